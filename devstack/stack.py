"""The whole local stack: moto, the template's resources, the API and the queue pollers."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import boto3

from devstack.awsgate import AuthorizingEndpoint, endpoint_for
from devstack.credentials import LocalKeys, seed_local_keys
from devstack.functions import Invocable
from devstack.gateway import ApiGateway
from devstack.invoke import RemoteFunction, WorkerPool, start_pools
from devstack.motoserver import MotoProcess
from devstack.pollers import LAMBDA_LONG_POLL_SECONDS, LONG_POLL_SECONDS, QueuePoller
from devstack.provision import DEFAULT_API_KEY, Provisioned, provision
from devstack.sam import SamLocalLambda, bridge_address
from devstack.sam import build as sam_build
from devstack.sam import invoke_command as sam_invoke_command
from devstack.ssf import seed_ssf_clients
from devstack.template import load_template

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"

SETTING_NAMES = (
    "SETHUB_ISSUER",
    "SETHUB_PUBLIC_HUB",
    "SETHUB_OPEN_TOPICS",
    "SETHUB_ALLOW_PRIVATE_CALLBACKS",
    "SETHUB_ALLOW_HTTP_CALLBACKS",
    "SETHUB_RETRY_SCHEDULE",
    "SETHUB_LEASE_SECONDS_MIN",
    "SETHUB_LEASE_SECONDS_MAX",
    "SETHUB_DELIVERY_TIMEOUT_SECONDS",
    "SETHUB_DISABLE_AFTER_SECONDS",
    "SETHUB_EVENT_RETENTION_DAYS",
    "SETHUB_PUBLIC_URL",
    "SETHUB_DELIVERY_CONCURRENCY",
    "SETHUB_SHARD_SIZE",
    "SETHUB_KEY_CACHE_SECONDS",
    "POWERTOOLS_LOG_LEVEL",
)
"""Settings a user may set in the environment of ``make local``; they win over the template."""

POLLERS_ENV = "SETHUB_LOCAL_POLLERS"
VISIBILITY_ENV = "SETHUB_LOCAL_VISIBILITY_TIMEOUT"
AWS_ENDPOINT_ENV = "SETHUB_LOCAL_AWS_ENDPOINT"
PREFIX_ENV = "SETHUB_LOCAL_PREFIX"
FUNCTIONS_ENV = "SETHUB_LOCAL_FUNCTIONS"
FUNCTION_MODES = ("process", "sam")
LAMBDA_INITIAL_POLLERS = 5
"""Concurrent long polls Lambda's SQS event source mapping starts per queue (it adds more only
under a backlog), capped by the mapping's ``MaximumConcurrency``."""
MAX_WORKERS_PER_FUNCTION = 8
"""Concurrent invocations of one function (Lambda would start more containers; a laptop should not)."""
# What a worker process keeps of the stack's own environment: enough to run Python, nothing
# of the stack's settings (a function sees only its own environment, as on Lambda).
_WORKER_BASE_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ", "SYSTEMROOT")
SAM_ENV_VARS_FILE = "devstack-env.json"
ENV_VARS_FILE_ENV = "SETHUB_LOCAL_ENV_VARS_FILE"
"""Write the functions' environments there instead (stacks side by side, as in the e2e tests)."""
"""Written next to the template: each function's environment for `sam local --env-vars`."""


@dataclass
class StackConfig:
    port: int = 3000
    moto_port: int = 0
    moto_endpoint: str | None = None
    """Attach to this moto server instead of starting one (its resources are reused)."""
    prefix: str = "sethub"
    template_path: Path = ROOT / "template.yaml"
    api_key: str = DEFAULT_API_KEY
    environ: Mapping[str, str] = field(default_factory=dict)
    """Where the settings are read from (the process environment)."""
    max_pollers_per_queue: int = LAMBDA_INITIAL_POLLERS
    visibility_timeout: int | None = None
    """Receive with this visibility timeout instead of the queue's (for quick recovery tests)."""
    access_log: bool = True
    functions_mode: str = "process"
    """``process``: a worker process per function; ``sam``: the Lambda runtime emulator."""

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], **given: object) -> StackConfig:
        visibility = environ.get(VISIBILITY_ENV)
        config = cls(
            port=int(environ.get("PORT") or 3000),
            moto_port=int(environ.get("MOTO_PORT") or 0),
            api_key=environ.get("SETHUB_LOCAL_API_KEY") or DEFAULT_API_KEY,
            environ=dict(environ),
            max_pollers_per_queue=int(environ.get(POLLERS_ENV) or LAMBDA_INITIAL_POLLERS),
            visibility_timeout=int(visibility) if visibility else None,
            moto_endpoint=environ.get(AWS_ENDPOINT_ENV) or None,
            prefix=environ.get(PREFIX_ENV) or "sethub",
            functions_mode=environ.get(FUNCTIONS_ENV) or "process",
        )
        if config.functions_mode not in FUNCTION_MODES:
            raise ValueError(f"{FUNCTIONS_ENV} must be one of {', '.join(FUNCTION_MODES)}")
        for name, value in given.items():
            if value is not None:
                setattr(config, name, value)
        return config


class LocalStack:
    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self._moto: MotoProcess | None = None
        self._pollers: list[QueuePoller] = []
        self._gateway: ApiGateway | None = None
        self._pools: dict[str, WorkerPool] = {}
        self._gates: list[AuthorizingEndpoint] = []
        self._emulator: SamLocalLambda | None = None
        self.moto_endpoint = config.moto_endpoint or ""
        self.function_host = HOST
        """The address functions reach this machine by (the embedded AWS, subscribers' callbacks):
        Docker's bridge in sam mode, as the emulator's containers are not on the host network."""
        self.provisioned: Provisioned | None = None
        self.local_keys: LocalKeys | None = None

    @property
    def base_url(self) -> str:
        port = self._gateway.port if self._gateway else self.config.port
        return f"http://{HOST}:{port}"

    def overrides(self, base_url: str) -> dict[str, str]:
        """The local defaults of DESIGN.md, then whatever the user set in the environment."""
        values = {
            "SETHUB_ALLOW_PRIVATE_CALLBACKS": "true",
            "SETHUB_ALLOW_HTTP_CALLBACKS": "true",
            "SETHUB_PUBLIC_URL": base_url,
        }
        values.update(
            {name: self.config.environ[name] for name in SETTING_NAMES if name in self.config.environ}
        )
        return values

    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        config = self.config
        template = load_template(config.template_path)
        if config.functions_mode == "sam":
            self.function_host = bridge_address()
        if not self.moto_endpoint:
            # In a process of its own (devstack.motoserver): not on this process's interpreter lock.
            self._moto = MotoProcess(self.function_host, config.moto_port)
            self.moto_endpoint = self._moto.start()
        region = config.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        aws_env = {
            "AWS_ENDPOINT_URL": self.moto_endpoint,
            "AWS_DEFAULT_REGION": region,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "POWERTOOLS_TRACE_DISABLED": "true",
        }
        os.environ.update(aws_env)
        # Bound before provisioning, so the port is known (PORT=0) and a busy port fails fast;
        # it answers 503 until the pollers run.
        self._gateway = ApiGateway(
            routes=[],
            functions={},
            api_key=config.api_key,
            gateway_responses={},
            host=HOST,
            port=config.port,
            access_log=config.access_log,
        )
        self._gateway.start()
        provisioned = provision(
            template,
            endpoint_url=self.moto_endpoint,
            prefix=config.prefix,
            overrides=self.overrides(self.base_url),
            api_key=config.api_key,
            region=region,
        )
        self.provisioned = provisioned
        self.local_keys = seed_local_keys(provisioned, config.environ)
        seed_ssf_clients(provisioned, config.environ)
        self._gateway.accept_keys(self.local_keys.accepts)
        endpoints = self._aws_endpoints(provisioned)
        lambda_envs = {
            name: self._lambda_env(provisioned, name, endpoints[name], aws_env)
            for name in provisioned.functions
        }
        self._write_sam_env_vars(lambda_envs)
        functions = self._start_functions(provisioned, lambda_envs)
        for mapping in provisioned.event_sources:
            if not mapping.enabled:
                continue
            # Lambda's poller works with the function's role: receive and delete go through its endpoint.
            sqs = boto3.client("sqs", endpoint_url=endpoints[mapping.function], region_name=region)
            poller = QueuePoller(
                mapping,
                functions[mapping.function],
                sqs,
                region=region,
                # Without MaximumConcurrency Lambda still starts its initial pollers.
                concurrency=min(
                    mapping.maximum_concurrency or LAMBDA_INITIAL_POLLERS, config.max_pollers_per_queue
                ),
                visibility_timeout=config.visibility_timeout,
                # Lambda's 20 s polls cost an idle stack almost nothing; a shared moto gets short
                # ones, as a stopping stack waits for its polls to end (pollers.py).
                long_poll_seconds=LAMBDA_LONG_POLL_SECONDS if self._moto is not None else LONG_POLL_SECONDS,
            )
            poller.start()
            self._pollers.append(poller)
        self._gateway.configure(
            routes=provisioned.routes,
            functions=functions,
            gateway_responses=provisioned.gateway_responses,
        )
        self._gateway.ready.set()

    def _aws_endpoints(self, provisioned: Provisioned) -> dict[str, str]:
        """The AWS endpoint each function (and its queue poller) calls: one that applies its role."""
        endpoints: dict[str, str] = {}
        for name in provisioned.functions:
            gate = endpoint_for(provisioned, name, host=self.function_host).start()
            self._gates.append(gate)
            endpoints[name] = gate.url
        return endpoints

    @staticmethod
    def _lambda_env(
        provisioned: Provisioned, name: str, endpoint: str, aws_env: Mapping[str, str]
    ) -> dict[str, str]:
        """What the function's container sees: its template environment and the runtime's variables."""
        spec = provisioned.functions[name]
        return {
            **provisioned.env_for(name),
            **aws_env,
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_REGION": provisioned.region,
            "AWS_LAMBDA_FUNCTION_NAME": name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_size),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        }

    def _start_functions(
        self, provisioned: Provisioned, lambda_envs: Mapping[str, Mapping[str, str]]
    ) -> Mapping[str, Invocable]:
        """A Lambda Invoke endpoint for every function: worker processes, or the SAM CLI's emulator."""
        specs = provisioned.functions
        if self.config.functions_mode == "sam":
            return self._start_emulator(provisioned, lambda_envs)
        base = {name: value for name, value in os.environ.items() if name in _WORKER_BASE_ENV}
        base |= {name: value for name, value in os.environ.items() if name.startswith("PYTHON")}
        self._pools = start_pools(
            specs,
            self.config.template_path.parent,
            {name: {**base, **env} for name, env in lambda_envs.items()},
            max_workers=MAX_WORKERS_PER_FUNCTION,
            # Warm: what the API and the queues invoke.
            warm={route.function for route in provisioned.routes}
            | {source.function for source in provisioned.event_sources},
        )
        return self._pools

    def _start_emulator(
        self, provisioned: Provisioned, lambda_envs: Mapping[str, Mapping[str, str]]
    ) -> dict[str, RemoteFunction]:
        """Every function in ``sam local start-lambda``, from ``sam build``'s output (rebuilt if stale)."""
        root = self.config.template_path.parent
        self._emulator = SamLocalLambda(
            root / ".aws-sam" / "build" / "template.yaml",
            lambda_envs,
            aws_endpoint=self.moto_endpoint,
            region=provisioned.region,
        )
        with self._emulator.log_path.open("a") as log:
            sam_build(root, self.config.template_path, region=provisioned.region, log=log)
        endpoint = self._emulator.start()
        return {name: RemoteFunction(spec, endpoint) for name, spec in provisioned.functions.items()}

    @property
    def sam_env_vars_path(self) -> Path:
        given = self.config.environ.get(ENV_VARS_FILE_ENV)
        return Path(given) if given else self.config.template_path.parent / SAM_ENV_VARS_FILE

    @property
    def _sam_env_vars_shown(self) -> str:
        """The file as the banner's commands name it: relative to the template's folder if in it."""
        path = self.sam_env_vars_path.resolve()
        root = self.config.template_path.parent.resolve()
        return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)

    def _write_sam_env_vars(self, lambda_envs: Mapping[str, Mapping[str, str]]) -> None:
        """Each function's environment, for ``sam local invoke/start-lambda --env-vars``."""
        env_vars = {name: dict(lambda_envs[name]) for name in sorted(lambda_envs)}
        self.sam_env_vars_path.write_text(json.dumps(env_vars, indent=2) + "\n")

    def stop(self) -> None:
        """Stop pollers (letting a running batch finish), then the API, then moto."""
        for poller in self._pollers:
            # Our own moto stops below: nothing can read its queues after us, so an idle long
            # poll need not end first.
            poller.request_stop(abandon_receives=self._moto is not None)
        for poller in self._pollers:
            poller.join()
        self._pollers.clear()
        if self._gateway is not None:
            self._gateway.stop()
            self._gateway = None
        for pool in self._pools.values():
            pool.stop()
        self._pools.clear()
        for gate in self._gates:
            gate.stop()
        self._gates.clear()
        if self._emulator is not None:
            self._emulator.stop()
            self._emulator = None
        if self._moto is not None:
            self._moto.stop()
            self._moto = None

    def banner(self) -> str:
        base = self.base_url
        return "\n".join(
            [
                "sethub local stack is ready",
                f"  API       {base}",
                f"  hub URL   {base}/hub",
                f"  JWKS      {base}/.well-known/jwks.json",
                *(
                    self.local_keys.banner_lines()
                    if self.local_keys
                    else [f"  API key   {self.config.api_key}"]
                ),
                f"  moto      {self.moto_endpoint} (prefix {self.config.prefix})",
                # The operator CLI finds this stack's resources by endpoint and prefix.
                f"  CLI       export SETHUB_AWS_ENDPOINT={self.moto_endpoint}"
                f" SETHUB_STACK={self.config.prefix}  (then: .venv/bin/sethub --help)",
                f"  sam local --env-vars {self._sam_env_vars_shown}",
                *self._functions_banner(),
                "Ctrl-C stops it.",
            ]
        )

    def _functions_banner(self) -> list[str]:
        lines = [f"  callback host {self.function_host} (where functions reach this machine)"]
        if self._emulator is not None:
            emulator = self._emulator
            lines.append(f"  functions sam local start-lambda {emulator.endpoint} (log {emulator.log_path})")
            command = sam_invoke_command(
                env_vars_file=self._sam_env_vars_shown,
                aws_endpoint=self.moto_endpoint,
                region=emulator.region,
            )
            lines.append(f"  invoke    {command}")
        else:
            lines.append("  functions worker processes")
        return lines
