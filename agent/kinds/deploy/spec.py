"""The `deploy` policy's spec: a version of an artifact, released on each host under
PATH/releases/VERSION behind the PATH/current symlink (Capistrano's layout), in waves
chosen by a strategy (rolling, canary or blue-green, as Argo Rollouts names them), with health
checks, analysis between waves, nginx traffic and rollback."""

from __future__ import annotations

import re
from typing import Annotated, Literal, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from agent.core.durations import Duration, parse_duration
from agent.core.rollout import Health, Size, WebUrl
from agent.core.secrets import SecretRef, never_inline
from agent.kinds.deploy.conditions import parse_condition
from agent.kinds.tasks import TasksSpec

# what a blue-green deploy sets per host for its tasks; validation and plain runs see these
SLOT_VARIABLES: dict[str, object] = {"slot": "", "slot_port": 0, "old_slot": "", "old_slot_port": 0}
VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_REF = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._/+-]{0,199}$")
_UPSTREAM = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class Artifact(BaseModel):
    """What is released: a tarball from the controller (src) or fetched by each host (url),
    or a git tag or branch each host clones (git and ref)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    src: str | None = Field(None, description="A .tar.gz file on the controller, relative to "
                            "the working directory; uploaded to each host (only when it is "
                            "not there yet).", examples=["dist/shop-api-{{ release }}.tar.gz"])
    url: WebUrl | None = Field(None, description="An http(s) URL each host fetches the .tar.gz "
                            "from itself; needs sha256.",
                            examples=["https://releases.example.com/shop-api-1.4.2.tar.gz"])
    git: str | None = Field(None, description="A git repository each host clones `ref` of "
                            "itself (its tree, without .git, is the release); needs ref.",
                            examples=["https://git.example.com/shop/api.git"])
    ref: str | None = Field(None, description="With git: the tag or branch.", examples=["v1.4.2"])
    sha256: str | None = Field(None, description="The tarball's SHA-256: the host refuses "
                               "one that does not match. Required with url; with src, computed "
                               "on the controller when not given.", examples=["9f86d0...0a08"])

    @field_validator("sha256")
    @classmethod
    def _hex(cls, value: str | None) -> str | None:
        if value is not None and not _SHA256.match(value):
            raise ValueError("expected 64 lowercase hex digits (sha256sum's output)")
        return value

    @field_validator("ref")
    @classmethod
    def _ref(cls, value: str | None) -> str | None:
        if value is not None and not _REF.match(value):
            raise ValueError(f"{value!r}: expected a tag or branch name")
        return value

    @model_validator(mode="after")
    def _one(self) -> Artifact:
        if sum(x is not None for x in (self.src, self.url, self.git)) != 1:
            raise ValueError("expected exactly one of src (a file on the controller), url or git")
        if (self.git is None) != (self.ref is None):
            raise ValueError("git and ref go together: the repository and its tag or branch")
        if self.url is not None and self.sha256 is None:
            raise ValueError("an artifact fetched by url needs its sha256")
        return self


class Nginx(BaseModel):
    """An nginx load balancer (an inventory host) in front of the policy's hosts: opsagent
    owns the upstream's file, marks a host `down` while it is replaced (drain), and puts
    it back once healthy; each edit is checked with `nginx -t` and reloaded gracefully."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(description="The inventory host nginx runs on.", examples=["lb1"])
    upstream: str = Field(description="The upstream's name, as `proxy_pass http://NAME` "
                          "uses it.", examples=["shop_api"])
    port: int = Field(8080, ge=1, le=65535, description="The port the app listens on on "
                      "each host.", examples=[8080])
    address: str = Field("{name}", description="Each app host's address in the upstream "
                         "(rendered per host; {name} is its inventory name); with a :PORT, "
                         "port is not added.", examples=["{name}.internal",
                                                         "{{ ansible_host }}:8081"])
    config: str = Field("/etc/nginx/conf.d/opsagent-{upstream}.conf", description="The "
                        "file that holds the upstream (opsagent writes it whole; include it "
                        "in the http block).", examples=["/etc/nginx/conf.d/shop_api.conf"])
    nginx: str = Field("nginx", description="How nginx is called on that host (its test and "
                       "reload: NGINX -t, NGINX -s reload).", examples=["nginx -c /etc/nginx/nginx.conf"])
    pid: str = Field("/run/nginx.pid", description="nginx's pid file (its master), to "
                     "wait for the old workers after a reload.", examples=["/run/nginx.pid"])
    drain_timeout: Duration = Field(30, description="How long to wait for the requests a "
                                    "drained host still serves (nginx's old workers) before "
                                    "it is replaced anyway.", examples=["30s"])

    @field_validator("upstream")
    @classmethod
    def _upstream(cls, value: str) -> str:
        if not _UPSTREAM.match(value):
            raise ValueError(f"{value!r}: an upstream name is letters, digits and _")
        return value

    @field_validator("config")
    @classmethod
    def _config(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("expected an absolute path")
        return value


class Traffic(BaseModel):
    """Who sends the requests: traffic moves off a host before it changes, and back after."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    nginx: Nginx = Field(description="The nginx load balancer.",
                         examples=[{"host": "lb1", "upstream": "shop_api"}])


class Prometheus(BaseModel):
    """A PromQL query against a Prometheus server's HTTP API, giving one number."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    query: str = Field(description="An instant query; {{ version }} is the version being "
                       "deployed. No data is inconclusive, never success.",
                       examples=['sum(rate(http_requests_total{code!~"5.."}[30s])) / '
                                 'sum(rate(http_requests_total[30s]))'])
    address: WebUrl = Field("http://localhost:9090", description="The server's URL.",
                         examples=["http://prometheus:9090"])


class Probe(BaseModel):
    """Requests opsagent sends itself to each host of the new version, measuring success
    rate and latency (the condition's success_rate, p50, p90, p95, p99, max)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: WebUrl = Field(description="An http(s) URL; {{ host.name }} is the host probed.",
                     examples=["http://{{ host.name }}:8080/"])
    requests: int = Field(20, ge=1, le=10000, description="Requests per host per measurement.",
                          examples=[50])
    timeout: float = Field(2.0, gt=0, le=60, description="Seconds before a request counts as "
                           "failed.", examples=[2])
    expect: int = Field(200, ge=100, le=599, description="The status code of a success.",
                        examples=[200])
    baseline: bool = Field(False, description="Also probe as many stable hosts at the same "
                           "time, so success may compare with them: `p99 <= 1.5 * "
                           "baseline.p99 + 20ms` (a slowdown of every host is not the "
                           "canary's).", examples=[True])


class Metric(BaseModel):
    """One measurement taken at each interval of an analysis."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Shown in status, metrics and events.", examples=["p99"])
    prometheus: Prometheus | None = Field(None, description="A PromQL query (a string is "
                                          "the query, against http://localhost:9090).",
                                          examples=[{"query": "sum(up)"}])
    http_probe: Probe | None = Field(None, description="Requests measured by opsagent.",
                                     examples=[{"url": "http://{{ host.name }}:8080/",
                                                "requests": 50}])
    success: str = Field(description="When a measurement passes: `>= 0.99` for a query's "
                         "value; for a probe, e.g. `success_rate >= 0.99 and p99 <= 300ms`.",
                         examples=[">= 0.99", "p99 <= 300ms"])

    @field_validator("prometheus", mode="before")
    @classmethod
    def _query(cls, value: object) -> object:
        return {"query": value} if isinstance(value, str) else value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"{value!r}: a name is lowercase letters, digits, - and _")
        return value

    @field_validator("success")
    @classmethod
    def _success(cls, value: str, info: ValidationInfo) -> str:
        probe = info.data.get("http_probe")
        parse_condition(value, probe=probe is not None, baseline=bool(probe and probe.baseline))
        return value

    @model_validator(mode="after")
    def _one(self) -> Metric:
        if (self.prometheus is None) == (self.http_probe is None):
            raise ValueError("expected exactly one of prometheus or http_probe")
        return self


class Analysis(BaseModel):
    """How the metrics are judged: `count` measurements `interval` apart (as Argo Rollouts'
    AnalysisTemplate); failed beyond failure_limit fails the analysis, no data beyond
    inconclusive_limit pauses the deploy for a person."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    interval: Duration = Field(5, description="Between measurements.", examples=["5s"])
    count: int = Field(3, ge=1, le=1000, description="Measurements taken.", examples=[6])
    failure_limit: int = Field(0, ge=0, description="Failed measurements allowed.",
                               examples=[1])
    inconclusive_limit: int = Field(0, ge=0, description="Measurements without data "
                                    "allowed.", examples=[1])

    @model_validator(mode="after")
    def _limits(self) -> Analysis:
        if self.failure_limit >= self.count:
            raise ValueError(f"failure_limit {self.failure_limit} would let every one of the "
                             f"{self.count} measurements fail")
        return self


FOREVER = -1  # a pause until promoted


def _pause(value: object) -> object:
    return FOREVER if value == "forever" else (None if value is None else parse_duration(value))


class CanaryStep(BaseModel):
    """One step of a canary: set how many hosts run the new version, analyse, or pause."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hosts: Size | None = Field(None, description="Hosts on the new version after this step "
                               "(a count or a share of all, counted from the start: 1, "
                               "\"50%\", \"100%\").", examples=["50%"])
    analysis: Analysis | None = Field(None, description="Measure the policy's analysis "
                                      "metrics now.", examples=[{"interval": "5s", "count": 6}])
    pause: Annotated[int | None, BeforeValidator(_pause)] = Field(
        None, description="Wait this long, or `forever`: until `opsagent deploy promote`.",
        examples=["30s", "forever"])
    weight: int | None = Field(None, ge=1, le=99, description="The share of requests (in %) "
                               "nginx sends the hosts on the new version together, from the "
                               "hosts step before it on (Argo Rollouts' setWeight; by default "
                               "their share of the hosts); needs traffic.", examples=[10])

    @model_validator(mode="after")
    def _one(self) -> CanaryStep:
        if sum(x is not None for x in (self.hosts, self.analysis, self.pause, self.weight)) != 1:
            raise ValueError("a step is exactly one of hosts, weight, analysis or pause")
        return self


class Canary(BaseModel):
    """New version on a few hosts first, analysed, then on more (Argo Rollouts' canary
    steps; the new version's share of requests is its share of the hosts, or a weight
    step's)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    steps: tuple[CanaryStep, ...] = Field(description="In order; hosts not "
                                          "reached by the last hosts step follow at the end.",
                                          examples=[[{"hosts": 1}, {"analysis": {"count": 6}},
                                                     {"hosts": "100%"}]])
    max_fail_percentage: float = Field(0, ge=0, le=100, description="Hosts that may fail "
                                       "their health check, as a share of all (over the whole "
                                       "deploy, not per step) before it fails.", examples=[10])

    @field_validator("steps")
    @classmethod
    def _some(cls, value: tuple[CanaryStep, ...]) -> tuple[CanaryStep, ...]:
        if not value:
            raise ValueError("expected at least one step, e.g. [{hosts: 1}, {analysis: {}}]")
        return value


class Rolling(BaseModel):
    """Hosts replaced in batches (Ansible's serial), each checked before the next."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    batch: tuple[Size, ...] = Field((1,), description="Hosts per wave, counts or shares; "
                                    "the last repeats.", examples=[[1, "30%", "100%"]])
    max_unavailable: int | None = Field(None, ge=1, description="At most this many hosts "
                                        "out of traffic at once: a bigger wave is cut.",
                                        examples=[1])
    max_fail_percentage: float = Field(0, ge=0, le=100, description="Hosts that may fail, as "
                                       "a share of all, over the whole deploy.", examples=[10])
    pause: Duration = Field(0, description="Wait between waves.", examples=["30s"])
    analysis: Analysis | None = Field(None, description="Measure the analysis metrics after "
                                      "each wave.", examples=[{"count": 3}])


class BlueGreen(BaseModel):
    """Two slots per host, each an instance of the app on its own port (Argo Rollouts'
    blue-green on plain hosts): the new release goes to the idle slot (PATH/slots/NAME),
    is activated and health-checked beside the live one, then nginx moves every host to it
    at once (one graceful reload); the old slot keeps running for scale_down_delay, so a
    failed analysis or an abort switches straight back; after it, `deploy rollback --to V`
    starts V (still on the host) in the idle slot, checks it and switches to it the same
    way. The activate, health and
    scale_down tasks see {{ slot }} and {{ slot_port }} (the slot being deployed) and
    {{ old_slot }} and {{ old_slot_port }} (the live one)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    slots: dict[str, int] = Field(description="Exactly two slots: name -> port.",
                                  examples=[{"blue": 8081, "green": 8082}])
    scale_down_delay: Duration = Field(30, description="How long the old slot keeps running "
                                       "after the switch, for an instant rollback (abort); "
                                       "after it, deploy rollback --to V starts V in the idle "
                                       "slot again.",
                                       examples=["30s"])
    analysis: Analysis | None = Field(None, description="Measured after the switch; a failure "
                                      "switches back.", examples=[{"count": 3}])
    scale_down: TasksSpec | None = Field(None, description="Tasks that stop the old slot once "
                                         "the delay is over (they see {{ old_slot }}).",
                                         examples=[{"tasks": [{"systemd.service": {
                                             "service": "shop-api@{{ old_slot }}",
                                             "running": False}}]}])

    @field_validator("slots")
    @classmethod
    def _two(cls, value: dict[str, int]) -> dict[str, int]:
        if len(value) != 2 or len(set(value.values())) != 2:
            raise ValueError("expected two slots with two ports, e.g. {blue: 8081, green: 8082}")
        for name, port in value.items():
            if not _NAME.match(name) or not 1 <= port <= 65535:
                raise ValueError(f"{name}: {port}: expected a lowercase name and a port")
        return value


class Strategy(BaseModel):
    """How hosts get the new version: exactly one of rolling, canary or blue_green."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rolling: Rolling | None = Field(None, examples=[{"batch": [1, "50%"]}],
                                    description="Batches of hosts.")
    canary: Canary | None = Field(None, examples=[{"steps": [{"hosts": 1}, {"analysis": {}}]}],
                                  description="A few hosts, analysed, then the rest.")
    blue_green: BlueGreen | None = Field(None, examples=[{"slots": {"blue": 8081,
                                                                   "green": 8082}}],
                                         description="Two slots per host, switched at once.")

    @model_validator(mode="after")
    def _one(self) -> Strategy:
        if sum(x is not None for x in (self.rolling, self.canary, self.blue_green)) != 1:
            raise ValueError("expected exactly one of rolling, canary or blue_green")
        return self

    @property
    def name(self) -> str:
        return "rolling" if self.rolling else "canary" if self.canary else "blue-green"


Event = Literal["started", "wave-done", "analysis-failed", "paused", "rolled-back", "aborted",
                "succeeded", "failed", "promoted"]
EVENTS: tuple[Event, ...] = get_args(Event)


class Webhook(BaseModel):
    """Where deploy events are POSTed as JSON, signed: X-Opsagent-Signature: sha256=HMAC
    of the body with the secret (as GitHub signs its webhooks). Each is retried with
    backoff for a while in the background; a receiver that is down never holds the deploy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: WebUrl = Field(description="An http(s) URL.", examples=["https://chat.example.com/hooks/deploys"])
    secret: Annotated[SecretRef, never_inline("a webhook secret", "{file: PATH} or {env: NAME}")] = Field(
        description="The HMAC-SHA256 key ({file: PATH} or {env: NAME}).",
        examples=[{"env": "DEPLOY_HOOK_SECRET"}])
    events: tuple[Event, ...] = Field(
        EVENTS, description="Which events it gets (default: all).",
        examples=[["started", "rolled-back", "succeeded"]])
    retries: int = Field(5, ge=0, le=20, description="Tries after the first, 1 s apart and "
                         "doubling.", examples=[5])


class PromoteFrom(BaseModel):
    """The environment a version must have run healthy in first (staging before prod)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    policy: str = Field(description="The deploy policy of that environment, in the same "
                        "state store.", examples=["shop-api-staging"])
    healthy_for: Duration = Field(600, description="How long the version must have been "
                                  "deployed there, succeeded and not rolled back since.",
                                  examples=["10m"])


class DeploySpec(BaseModel):
    """Releases of one app on plain hosts: PATH/releases/VERSION behind PATH/current,
    switched atomically, in waves with health checks, analysis, nginx draining and
    automatic rollback. `opsagent deploy start POLICY --set release=1.4.2` deploys;
    `apply` and the daemon only read each host's release state (for metrics and status),
    never deploy on their own. The last release that passed its checks on a host is
    kept as `verified`: rollbacks go there, and pruning never removes it."""

    model_config = ConfigDict(extra="forbid")

    version: str = Field(description="The version deployed, a folder name: usually given "
                         "at deploy time (--set release=1.4.2). The rest of the spec sees it as "
                         "{{ version }}.", examples=["{{ release }}", "1.4.2"])
    artifact: Artifact = Field(description="The release's files.",
                               examples=[{"src": "dist/shop-api-{{ release }}.tar.gz"}])
    path: str = Field(description="Where releases live on each host: releases/VERSION/ and "
                      "the current symlink.", examples=["/srv/shop-api"])
    keep_releases: int = Field(5, ge=1, le=100, description="Releases kept on each host; "
                               "the current and the last verified one are never removed.",
                               examples=[5])
    activate: TasksSpec | None = Field(None, description="Tasks run on a host after its "
                                       "current symlink moved (restart the service), and "
                                       "after a rollback.", examples=[{"tasks": [{
                                           "systemd.service": {"service": "shop-api",
                                                               "restarted": True}}]}])
    health: Health | None = Field(None, description="Checked on each host after it was "
                                  "activated (blue-green: on the new slot, before the switch); "
                                  "a host that fails it is rolled back.",
                                  examples=[{"http": {"url": "http://{{ host.name }}:8080/up"},
                                             "retries": 5, "delay": "1s"}])
    traffic: Traffic | None = Field(None, description="The load balancer to drain hosts "
                                    "from.", examples=[{"nginx": {"host": "lb1",
                                                                  "upstream": "shop_api"}}])
    strategy: Strategy = Field(description="Rolling, canary or blue_green.",
                               examples=[{"rolling": {"batch": [1, "50%"]}}])
    analysis: list[Metric] = Field(default_factory=list, description="What analysis steps "
                                   "measure.", examples=[[{"name": "p99", "http_probe": {
                                       "url": "http://{{ host.name }}:8080/"},
                                       "success": "p99 <= 300ms"}]])
    webhooks: list[Webhook] = Field(default_factory=list, description="Where deploy events "
                                    "go (started, wave-done, analysis-failed, paused, "
                                    "rolled-back, aborted, succeeded, failed, promoted).",
                                    examples=[[{"url": "https://hooks.example.com/deploy",
                                                "secret": {"env": "HOOK_SECRET"}}]])
    promote_from: PromoteFrom | None = Field(None, description="Refuse a version that did not "
                                             "run healthy in this environment first.",
                                             examples=[{"policy": "shop-api-staging",
                                                        "healthy_for": "10m"}])
    on_failure: Literal["rollback", "pause"] = Field(
        "rollback", description="What a failed health check or analysis does: roll back the "
        "hosts already changed, or pause for a person (releases whose migrations cannot be "
        "undone).", examples=["pause"])

    @field_validator("version")
    @classmethod
    def _version(cls, value: str) -> str:
        if not VERSION.match(value):
            raise ValueError(f"{value!r}: a version is letters, digits, '.', '_', '+' and '-' "
                             "(it names a folder)")
        return value

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/") or value.rstrip("/") == "" or ".." in value.split("/"):
            raise ValueError("expected an absolute path, not / and without ..")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _analysed(self) -> DeploySpec:
        strategy = self.strategy
        wants = (strategy.rolling is not None and strategy.rolling.analysis) or (
            strategy.canary is not None and any(s.analysis for s in strategy.canary.steps)) or (
            strategy.blue_green is not None and strategy.blue_green.analysis)
        if strategy.canary is not None and self.traffic is None \
                and any(step.weight for step in strategy.canary.steps):
            raise ValueError("a canary weight step needs traffic (nginx): weights are nginx's")
        if strategy.blue_green is not None and self.traffic is None:
            raise ValueError("blue_green needs traffic (nginx): its switch is nginx's")
        if strategy.blue_green is not None and self.traffic is not None \
                and ":" in self.traffic.nginx.address:
            raise ValueError("with blue_green, traffic.nginx.address has no port: each "
                             "slot's port is added")
        if wants and not self.analysis:
            raise ValueError("the strategy has analysis steps but spec.analysis lists no metric")
        return self
