"""Every option and ini key, validated in one place; errors list the valid values.

pytest-asyncio's habit: one function reads the command line and the ini file and either
returns a frozen Settings or raises a ConfigError naming the option and the fix.
"""
from __future__ import annotations

import itertools
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pytest_snowpipe.pipeline.config import ConfigError, ConfigValue, apply_overrides, freeze, parse_lines

DEFAULT_REGISTRY = ".snowpipe/registry"
DEFAULT_RUNS = ".snowpipe/runs"

# (name, type, default, help) of every ini key; the plugin registers them from here.
IniType = Literal["string", "linelist", "bool", "int", "float"]
INI_KEYS: tuple[tuple[str, IniType, Any, str], ...] = (
    ("snowpipe_config", "linelist", [], "pipeline config, one 'key = value' per line (str/int/float/bool)"),
    ("snowpipe_registry", "string", DEFAULT_REGISTRY, "folder of the local model registry (relative to the rootdir)"),
    (
        "snowpipe_alert_webhook_env",
        "string",
        "SNOWPIPE_ALERT_WEBHOOK",
        "name of the environment variable holding the alert webhook URL (the URL itself never goes in a file)",
    ),
    ("snowpipe_connection", "string", "", "default Snowflake connection name from connections.toml"),
    ("snowpipe_dag_name", "string", "SNOWPIPE_PIPELINE", "name of the deployed Task Graph (its root task)"),
    ("snowpipe_warehouse", "string", "", "warehouse the Task Graph's tasks run on"),
    ("snowpipe_stage_location", "string", "@SNOWPIPE_STAGE", "stage where task code and stage outputs are stored"),
    ("snowpipe_database", "string", "", "database the Task Graph is deployed to"),
    ("snowpipe_schema", "string", "", "schema the Task Graph is deployed to"),
    ("snowpipe_packages", "linelist", [], "extra Anaconda packages the tasks need (one per line; a bare name is pinned like an inferred one)"),
    ("snowpipe_packages_snapshot", "string", "", "a snapshot of your account's information_schema.packages (written by "
     "--snowpipe-write-packages-snapshot) that dry runs without a connection judge packages against (relative to the rootdir)"),
    ("snowpipe_notification_integration", "string", "", "notification integration the alert action sends through"),
    ("snowpipe_report_dir", "string", "", "folder for report.json and report.md (like --snowpipe-report; relative to the rootdir)"),
    ("snowpipe_cache_dir", "string", "", "folder of the stage cache (default: .pytest_cache/d/snowpipe; relative to the rootdir)"),
    ("snowpipe_cache_max_size", "string", "2GB", "size bound of the stage cache, e.g. 500MB or 2GB; least recently used entries go first"),
    ("snowpipe_runs_dir", "string", DEFAULT_RUNS, "folder where emulated and rehearsed Task Graph runs are kept for "
     "'snowpipe runs' and --snowpipe-replay (relative to the rootdir)"),
    ("snowpipe_keep_outputs", "bool", False, "the graph's finalizer keeps each run's output tables and stage files "
     "(for --snowpipe-replay); default: it drops them"),
)

TARGETS = ("local", "snowflake")
REMOTE_MODES = ("job", "local")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")


@dataclass(frozen=True)
class DeploySettings:
    """What ``--snowpipe-deploy`` was asked to do, validated."""

    target: str
    dry_run: bool
    run_once: bool
    schedule: Any  # timedelta | Cron | None
    dag_name: str
    warehouse: str | None
    stage_location: str
    database: str | None
    schema: str | None
    packages: tuple[str, ...]
    notification_integration: str | None
    packages_snapshot: Path | None = None  # ini snowpipe_packages_snapshot (None: the bundled one)
    undeploy: bool = False  # --snowpipe-undeploy: drop the deployed graph and its stage files
    write_packages_snapshot: Path | None = None  # --snowpipe-write-packages-snapshot: write the account's channel here

    @property
    def runs_locally(self) -> bool:
        """Whether the deploy command runs the graph here (release.execute: the local target, not a dry run)."""
        return self.target == "local" and not self.dry_run and self.write_packages_snapshot is None


@dataclass(frozen=True)
class Settings:
    """The validated options of one pytest run."""

    config: Mapping[str, ConfigValue]
    registry: Path
    webhook_env: str
    connection: str | None
    deploy: DeploySettings | None = None
    report_dir: Path | None = None  # --snowpipe-report: where report.json and report.md go
    no_cache: bool = False  # --snowpipe-no-cache: stage outputs are neither read from nor written to the cache
    cache_clear: bool = False  # --snowpipe-cache-clear: the cache is emptied before the run
    cache_dir: Path | None = None  # ini snowpipe_cache_dir; None: inside pytest's cache dir
    cache_max_bytes: int = 2 * 10**9  # ini snowpipe_cache_max_size
    remote: str = "local"  # --snowpipe-remote: 'job' submits remote stages as ML Jobs, 'local' runs a fresh process
    runs_dir: Path | None = None  # ini snowpipe_runs_dir: emulated runs kept for `snowpipe runs` and --snowpipe-replay
    keep_outputs: bool = False  # ini snowpipe_keep_outputs: the finalizer keeps each run's outputs
    replay: str | None = None  # --snowpipe-replay RUN: the run whose config and stored outputs this run starts from


def read_settings(
    getoption: Any, getini: Any, rootpath: Path, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read and validate every option; raise ConfigError (shown as a UsageError) on bad input."""
    env = os.environ if environ is None else environ
    base = parse_lines(getini("snowpipe_config"), origin="ini snowpipe_config")
    config = apply_overrides(base, getoption("snowpipe_config") or [])
    from pytest_snowpipe.redact import short_secret_problems

    short = short_secret_problems(config)
    if short:
        raise ConfigError("; ".join(short))
    registry = Path(str(getini("snowpipe_registry") or DEFAULT_REGISTRY)).expanduser()
    if not registry.is_absolute():
        registry = rootpath / registry
    webhook_env = str(getini("snowpipe_alert_webhook_env") or "SNOWPIPE_ALERT_WEBHOOK")
    if not webhook_env.replace("_", "").isalnum():
        raise ConfigError(
            f"snowpipe_alert_webhook_env = {webhook_env!r} is not an environment variable name; "
            "give the NAME of the variable (e.g. SNOWPIPE_ALERT_WEBHOOK), never the URL itself."
        )
    connection = (
        getoption("snowpipe_connection")
        or str(getini("snowpipe_connection") or "")
        or env.get("SNOWFLAKE_CONNECTION_NAME")
        or None
    )
    deploy = _read_deploy(getoption, getini, connection, rootpath)
    if deploy is not None:
        from pytest_snowpipe.redact import deploy_secret_problems

        shipped = deploy_secret_problems(config)  # a Task Graph config is readable by anyone who can DESCRIBE it
        if shipped:
            raise ConfigError("; ".join(shipped))
    remote = _read_remote(getoption("snowpipe_remote"), connection)
    replay = _read_replay(getoption("snowpipe_replay"), deploy)
    return Settings(
        runs_dir=_rooted(str(getini("snowpipe_runs_dir") or DEFAULT_RUNS), rootpath),
        keep_outputs=bool(getini("snowpipe_keep_outputs")), replay=replay,
        remote=remote,
        config=freeze(config), registry=registry, webhook_env=webhook_env, connection=connection, deploy=deploy,
        report_dir=_read_report_dir(getoption, getini, rootpath),
        **_read_cache(getoption, getini, rootpath),
    )


def _read_replay(value: str | None, deploy: DeploySettings | None) -> str | None:
    """``--snowpipe-replay RUN``: a run id (or ``last``); it reruns a recorded run locally, so never with a deploy."""
    if value is None:
        return None
    if not str(value).strip():
        raise ConfigError("--snowpipe-replay needs a run id (see `snowpipe runs`), or 'last' for the latest run")
    if deploy is not None:
        raise ConfigError("--snowpipe-replay reruns a recorded run locally; drop --snowpipe-deploy (or the replay).")
    return str(value).strip()


def _read_remote(value: str | None, connection: str | None) -> str:
    """``--snowpipe-remote``: 'job' (default with a connection) or 'local' (the only choice without one)."""
    if value is None or value == "":
        return "job" if connection else "local"
    if value not in REMOTE_MODES:
        raise ConfigError(
            f"--snowpipe-remote {value!r} is not a valid mode. Valid modes: job (remote stages run as Snowflake "
            "ML Jobs), local (in a fresh local process)"
        )
    if value == "job" and not connection:
        raise ConfigError(
            "--snowpipe-remote=job submits remote stages as Snowflake ML Jobs and needs an account: pass "
            "--snowpipe-connection NAME (or set SNOWFLAKE_CONNECTION_NAME), or use --snowpipe-remote=local"
        )
    return value


def _read_cache(getoption: Any, getini: Any, rootpath: Path) -> dict[str, Any]:
    """The stage cache's options (nothing is created here: the cache folder appears on first store)."""
    from pytest_snowpipe.local.cache_store import parse_size

    text = str(getini("snowpipe_cache_max_size") or "").strip()
    try:
        max_bytes = parse_size(text)
    except ValueError:
        raise ConfigError(
            f"snowpipe_cache_max_size = {text!r} is not a size; write a number with a unit, e.g. "
            "500MB or 2GB (units: B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)"
        ) from None
    if max_bytes <= 0:
        raise ConfigError(
            f"snowpipe_cache_max_size = {text!r} leaves no room; give a positive size (e.g. 500MB), "
            "or pass --snowpipe-no-cache to turn the cache off"
        )
    folder_text = str(getini("snowpipe_cache_dir") or "").strip()
    folder = Path(folder_text).expanduser() if folder_text else None
    if folder is not None and not folder.is_absolute():
        folder = rootpath / folder
    if folder is not None and folder.exists() and not folder.is_dir():
        raise ConfigError(f"snowpipe_cache_dir = {folder_text!r}: {folder} is a file; give a folder path")
    return {
        "no_cache": bool(getoption("snowpipe_no_cache")),
        "cache_clear": bool(getoption("snowpipe_cache_clear")),
        "cache_dir": folder,
        "cache_max_bytes": max_bytes,
    }


def report_option_misread(invocation_args: Sequence[str], test_args: Sequence[str], invocation_dir: Path) -> str | None:
    """Why ``--snowpipe-report=DIR`` (a space, not ``=``) may have moved the rootdir, or None.

    pytest picks the rootdir and ini file from the command line's existing paths *before* it
    loads plugins, so it cannot know DIR belongs to our option: an existing DIR outside the test
    paths (the second run, once the first made it) silently moves the rootdir, and the suite's
    own ini file, its ``snowpipe_config`` included, is no longer read.
    """
    for flag, value in itertools.pairwise(invocation_args):
        if flag != "--snowpipe-report":
            continue
        folder = (invocation_dir / value).resolve()
        if not folder.exists():
            return None  # pytest skips paths that do not exist: no harm done
        tests = [(invocation_dir / a.split("::")[0]).resolve() for a in test_args] or [invocation_dir.resolve()]
        tests = [t for t in tests if t.exists()] or [invocation_dir.resolve()]
        if os.path.commonpath([*map(str, tests), str(folder)]) != os.path.commonpath(list(map(str, tests))):
            return (
                f"--snowpipe-report {value}: pytest looks for its rootdir and ini file before it knows "
                f"this plugin's options, so it took the existing folder {value} for a test path and may "
                f"have read the wrong ini file (and snowpipe_config). Write it with '=': "
                f"--snowpipe-report={value}"
            )
    return None


def _read_report_dir(getoption: Any, getini: Any, rootpath: Path) -> Path | None:
    """The report folder, created and proven writable now: before any stage runs, not after the pipeline."""
    option = getoption("snowpipe_report")
    text = option or str(getini("snowpipe_report_dir") or "")
    if not text:
        return None
    what = f"--snowpipe-report {option}" if option else f"snowpipe_report_dir = {text}"
    folder = Path(text).expanduser()
    if not folder.is_absolute():
        folder = (Path.cwd() if option else rootpath) / folder
    if folder.exists() and not folder.is_dir():
        raise ConfigError(
            f"{what}: {folder} is a file, not a folder; the report writes report.json and report.md "
            "into a folder. Pass a folder path (e.g. --snowpipe-report=report/) or move the file away."
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".snowpipe-probe-"):
            pass
    except OSError as exc:
        raise ConfigError(
            f"{what}: the report folder {folder} is not writable ({exc.strerror or exc}); pass a folder "
            "you can create and write (e.g. --snowpipe-report=report/)."
        ) from None
    return folder


def _ident(value: str, what: str) -> str:
    if not _IDENT.match(value):
        raise ConfigError(
            f"{what} {value!r} is not a valid unquoted Snowflake identifier; use letters, digits, "
            "_ and $, starting with a letter or _"
        )
    return value


def _read_deploy(getoption: Any, getini: Any, connection: str | None, rootpath: Path) -> DeploySettings | None:
    deploy = bool(getoption("snowpipe_deploy"))
    dry_run = bool(getoption("snowpipe_dry_run"))
    undeploy = bool(getoption("snowpipe_undeploy"))
    write_snapshot = getoption("snowpipe_write_packages_snapshot")
    run_once = bool(getoption("snowpipe_run"))
    target = getoption("snowpipe_target")
    schedule_text = getoption("snowpipe_schedule")
    if not deploy:
        used = [
            flag
            for flag, value in (
                ("--snowpipe-dry-run", dry_run),
                ("--snowpipe-run", run_once),
                ("--snowpipe-target", target),
                ("--schedule", schedule_text is not None),
                ("--snowpipe-dag-name", getoption("snowpipe_dag_name")),
                ("--snowpipe-undeploy", undeploy),
                ("--snowpipe-write-packages-snapshot", write_snapshot is not None),
            )
            if value
        ]
        if used:
            raise ConfigError(f"{', '.join(used)} only apply with --snowpipe-deploy; add it.")
        return None
    target = target or "snowflake"
    if target not in TARGETS:
        raise ConfigError(f"--snowpipe-target {target!r} is not a valid target. Valid targets: {', '.join(TARGETS)}")
    schedule = None
    if schedule_text is not None:  # "--schedule=" (an unset CI variable) is an error, not "no schedule"
        from pytest_snowpipe.taskgraph.schedule import ScheduleError, parse_schedule

        try:
            schedule = parse_schedule(schedule_text)
        except ScheduleError as exc:
            raise ConfigError(f"--schedule: {exc}") from None
    if (undeploy or write_snapshot is not None) and (dry_run or run_once or target == "local"):
        what = "--snowpipe-undeploy" if undeploy else "--snowpipe-write-packages-snapshot"
        raise ConfigError(f"{what} works on the account alone: drop --snowpipe-dry-run, --snowpipe-run and --snowpipe-target local.")
    if (undeploy or write_snapshot is not None) and not connection:
        what = "--snowpipe-undeploy" if undeploy else "--snowpipe-write-packages-snapshot"
        raise ConfigError(f"{what} needs a Snowflake account: pass --snowpipe-connection NAME (or set SNOWFLAKE_CONNECTION_NAME).")
    if write_snapshot is not None and not str(write_snapshot).strip():
        raise ConfigError("--snowpipe-write-packages-snapshot needs a file path, e.g. --snowpipe-write-packages-snapshot=packages.json")
    if run_once and target == "snowflake" and not connection and not dry_run:
        raise ConfigError(
            "--snowpipe-run executes the deployed graph and needs a Snowflake account: pass "
            "--snowpipe-connection NAME (or set SNOWFLAKE_CONNECTION_NAME)."
        )
    if run_once and target == "snowflake" and schedule is None and not dry_run:
        raise ConfigError("--snowpipe-run needs --schedule (the graph to run is the scheduled one); add e.g. --schedule 30m.")
    dag_name = _ident(getoption("snowpipe_dag_name") or str(getini("snowpipe_dag_name")), "--snowpipe-dag-name")
    warehouse = str(getini("snowpipe_warehouse") or "") or None
    database = str(getini("snowpipe_database") or "") or None
    schema = str(getini("snowpipe_schema") or "") or None
    for value, what in ((warehouse, "snowpipe_warehouse"), (database, "snowpipe_database"), (schema, "snowpipe_schema")):
        if value:
            _ident(value, what)
    integration = str(getini("snowpipe_notification_integration") or "") or None
    if integration:
        _ident(integration, "snowpipe_notification_integration")
    return DeploySettings(
        target=target,
        dry_run=dry_run,
        run_once=run_once,
        schedule=schedule,
        dag_name=dag_name,
        warehouse=warehouse,
        stage_location=str(getini("snowpipe_stage_location") or "@SNOWPIPE_STAGE"),
        database=database,
        schema=schema,
        packages=tuple(getini("snowpipe_packages") or ()),
        notification_integration=integration,
        packages_snapshot=_rooted(str(getini("snowpipe_packages_snapshot") or ""), rootpath),
        undeploy=undeploy,
        write_packages_snapshot=_rooted(str(write_snapshot or ""), rootpath),
    )


def _rooted(text: str, rootpath: Path) -> Path | None:
    """A path from the ini file or the command line, relative to the rootdir; None when empty."""
    if not text.strip():
        return None
    path = Path(text.strip()).expanduser()
    return path if path.is_absolute() else rootpath / path
