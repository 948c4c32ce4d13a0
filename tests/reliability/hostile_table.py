"""The hostile-input table: every row, and what it must do at each door it can enter.

A row lists only the doors its input can pass: a Python call cannot carry malformed
JSON, a services file has no second payload. In the texts, ``@svc`` is a service
name of the cell's own; ``@running``, ``@manual``, ``@approved``, ``@finished`` and
``@cancelled`` name the door's recoveries in those states (``hostile_doors.Role``);
``@coordinator`` and ``@tq`` name its coordinator and task queue.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from tests.reliability.hostile_doors import Door, Ending, Expect, Harness, Probe, Role
from tests.reliability.hostile_probes import (
    RawBytes,
    ctl,
    during_shutdown,
    facade,
    services_file,
    signal,
    temporal,
    temporal_start,
    update,
    worker_start,
)
from workflows.constants import CONSTITUTIONAL_HASH

D = Door
ALL_DOORS = tuple(Door)


@dataclass(frozen=True)
class Cell:
    """One row at one door: the probe and what it must observe.

    ``known_bug`` names a defect in code this suite does not own: the cell runs, and
    an xfail with that reason is reported until the defect is fixed.
    """

    probe: Probe
    expect: Expect
    known_bug: str | None = None


@dataclass(frozen=True)
class Row:
    """One hostile input, through every door it can enter."""

    id: str
    what: str
    cells: Mapping[Door, Cell]
    roles: tuple[Role, ...] = ()
    # The state the coordinator must be in first: running, or shut down.
    needs: Literal["running", "stopped"] = "running"
    # Text that must never appear in what the door answers (a planted secret).
    secret: str | None = None


def refused(
    fragment: str, error_type: str | None = "RecoveryValidationError", code: int = 2
) -> Expect:
    """A refusal whose message holds ``fragment`` (recoveryctl: exit ``code``)."""
    return Expect("refused", fragment, code=code, error_type=error_type)


def accepted(ending: Ending | None = None, fragment: str = "") -> Expect:
    """An input that is valid: taken, and (when ``ending``) its recovery ends so."""
    return Expect("accepted", fragment, code=0, ends=ending)


def ignored(fragment: str) -> Expect:
    """A signal the recovery records in ``ignored_signals`` and otherwise ignores."""
    return Expect("ignored", fragment, code=0)


def for_door(door: Door, expect: Expect) -> Expect:
    """Keep only what ``door`` can show: an exit code, an error class."""
    code = expect.code if door in (D.CTL, D.TEMPORAL) else None
    typed = door in (D.FACADE, D.UPDATE, D.TEMPORAL)
    if door is D.TEMPORAL and expect.outcome == "refused" and expect.error_type is not None:
        code = None  # the workflow's own refusal: `temporal workflow start` itself succeeded
    return replace(expect, code=code, error_type=expect.error_type if typed else None)


def row(
    id: str,
    what: str,
    expect: Expect,
    probes: Mapping[Door, Probe],
    *,
    overrides: Mapping[Door, Expect] | None = None,
    known_bugs: Mapping[Door, str] | None = None,
    **options: Any,
) -> Row:
    """Build a row: one expectation, adjusted per door, and door-specific exceptions."""
    cells = {
        door: Cell(
            probe,
            for_door(door, (overrides or {}).get(door, expect)),
            (known_bugs or {}).get(door),
        )
        for door, probe in probes.items()
    }
    return Row(id, what, cells, **options)


FacadeCall = Callable[[Harness, str], Awaitable[object]]


def scheduling(
    json_text: str | None,
    *,
    facade_call: FacadeCall | None = None,
    ctl_args: tuple[str, ...] | None = None,
    toml_text: str | None = None,
    temporal_id: str = "recovery-@svc",
) -> dict[Door, Probe]:
    """Probes that schedule with one input: raw update and signal, `temporal workflow
    start` of ServiceRecovery (same fields), and the facade, recoveryctl and file forms."""
    probes: dict[Door, Probe] = {}
    if facade_call is not None:
        probes[D.FACADE] = facade(facade_call)
    if json_text is not None:
        probes[D.UPDATE] = update("schedule_recovery", json_text)
        probes[D.SIGNAL] = signal("schedule_recovery", json_text)
        probes[D.TEMPORAL] = temporal_start(json_text, workflow_id=temporal_id)
    if ctl_args is not None:
        probes[D.CTL] = ctl("schedule", *ctl_args)
    if toml_text is not None:
        probes[D.TOML] = services_file(toml_text)
    return probes


def schedule_call(*args: Any, **kwargs: Any) -> FacadeCall:
    """A facade ``schedule_recovery`` call; ``"@svc"`` among the arguments is filled in."""

    def fill(value: Any, harness: Harness, svc: str) -> Any:
        return harness.fill(value, svc) if isinstance(value, str) else value

    async def call(harness: Harness, svc: str) -> object:
        schedule: Any = harness.facade.schedule_recovery  # Any: hostile arguments
        return await schedule(
            *(fill(a, harness, svc) for a in args),
            **{k: fill(v, harness, svc) for k, v in kwargs.items()},
        )

    return call


def doc(**fields: Any) -> str:
    """A schedule_recovery JSON object for ``@svc`` with these fields."""
    return json.dumps({"service_name": "@svc", **fields})


def file_for(body: str, name: str = "@svc") -> str:
    """A services file with one service table."""
    return f"[services.{json.dumps(name, ensure_ascii=False)}]\n{body}\n"


def policy_row(
    id: str,
    what: str,
    expect: Expect,
    json_policy: str,
    python_policy: dict[str, Any],
    toml_body: str,
    **options: Any,
) -> Row:
    """A row whose hostile part is in the policy: the same policy through all six doors.

    ``json_policy`` is the policy as JSON text (it may hold what Python cannot write,
    ``1e400``); ``python_policy`` the facade's dict; ``toml_body`` the file's lines.
    """
    text = f'{{"service_name": "@svc", "strategy": "immediate", "policy": {json_policy}}}'
    return row(
        id,
        what,
        expect,
        scheduling(
            text,
            facade_call=schedule_call("@svc", "immediate", policy=python_policy),
            ctl_args=("@svc", "--strategy", "immediate", "--policy", json_policy),
            toml_text=file_for(f'strategy = "immediate"\n{toml_body}'),
        ),
        **options,
    )


def name_row(id: str, what: str, name: str, fragment: str, **options: Any) -> Row:
    """A row whose hostile part is the service name, through all six doors."""
    return row(
        id,
        what,
        refused(fragment),
        scheduling(
            json.dumps({"service_name": name}),
            facade_call=schedule_call(name),
            ctl_args=(name,),
            toml_text=file_for("priority = 1", name),
            temporal_id=f"recovery-{name}",
        ),
        **options,
    )


def priority_row(id: str, what: str, priority: int, expect: Expect, **options: Any) -> Row:
    """A row whose hostile part is the priority, through all six doors."""
    return row(
        id,
        what,
        expect,
        scheduling(
            doc(strategy="immediate", priority=priority),
            facade_call=schedule_call("@svc", "immediate", priority),
            ctl_args=("@svc", "--strategy", "immediate", "--priority", str(priority)),
            toml_text=file_for(f'strategy = "immediate"\npriority = {priority}'),
        ),
        **options,
    )


def check_row(id: str, what: str, expect: Expect, check: dict[str, Any], toml_check: str,
              **options: Any) -> Row:
    """A row whose hostile part is the health check (one attempt, IMMEDIATE)."""
    policy = {"max_retry_attempts": 1, "health_check": check}
    return policy_row(
        id,
        what,
        expect,
        json.dumps(policy),
        policy,
        f"max_retry_attempts = 1\nhealth_check = {toml_check}",
        **options,
    )


# ----- operator actions on the door's own recoveries ------------------------------------


def approve_call(role: Role, note: str = "") -> FacadeCall:
    """The facade's ``approve_recovery`` on one of the door's recoveries."""

    async def call(harness: Harness, svc: str) -> object:
        await harness.facade.approve_recovery(harness.service(role), operator="hx", note=note)
        return "approval sent"

    return call


def cancel_call(role: Role) -> FacadeCall:
    """The facade's ``cancel_recovery`` on one of the door's recoveries."""

    async def call(harness: Harness, svc: str) -> object:
        return await harness.facade.cancel_recovery(harness.service(role))

    return call


def approve_probes(role: Role, note: str = "", operator: str = "hx") -> dict[Door, Probe]:
    """Approve ``role``'s recovery through every door that can: facade, execute_recovery
    (the coordinator's approval), the ``approve`` signal raw and with the temporal CLI,
    and ``recoveryctl approve``."""
    approval = json.dumps({"operator": operator, "note": note})
    target = f"recovery-@{role}"
    return {
        D.FACADE: facade(approve_call(role, note)),
        D.UPDATE: update(
            "execute_recovery", json.dumps({"service_name": f"@{role}", "operator": operator})
        ),
        D.SIGNAL: signal("approve", approval, target=target),
        D.TEMPORAL: temporal(
            "workflow", "signal", "--workflow-id", target, "--name", "approve",
            "--input", approval, signal=(target, "approve"),
        ),
        D.CTL: ctl("approve", f"@{role}", "--operator", operator, "--note", note),
    }


async def wrong_hash_schedule(harness: Harness, svc: str) -> object:
    """Schedule through a started facade whose hash has been changed to a wrong one."""
    orch = harness.bystander
    orch.constitutional_hash = "bad"
    try:
        return await orch.schedule_recovery(svc, "immediate")
    finally:
        orch.constitutional_hash = CONSTITUTIONAL_HASH


def good_recovery() -> dict[Door, Probe]:
    """A good IMMEDIATE recovery through every door (the control row, run last)."""
    return scheduling(
        doc(strategy="immediate"),
        facade_call=schedule_call("@svc", "immediate"),
        ctl_args=("@svc", "--strategy", "immediate"),
        toml_text=file_for('strategy = "immediate"'),
    )


INVALID_NAME = "is invalid: use 1-200 characters of A-Z a-z 0-9 _ . -"
LONG_NAME = "x" * 10240
LONG_NOTE = "n" * 10240
# "pаyments" with a Cyrillic а (U+0430): looks like a name the fleet uses, is not one.
HOMOGLYPH = "p\u0430yments-@svc"
DEEP = "[" * 20000 + "]" * 20000  # past every JSON parser's depth limit, inside argv's

TABLE: list[Row] = [
    # ----- payload shape ---------------------------------------------------------------
    row(
        "malformed-json", "malformed JSON (a truncated object)",
        refused("Invalid JSON"),
        {
            D.UPDATE: update("schedule_recovery", '{"service_name": "@svc", "priority": '),
            D.SIGNAL: signal("schedule_recovery", '{"service_name": "@svc", "priority": '),
            D.TEMPORAL: temporal_start('{"service_name": "@svc", "priority": '),
            D.CTL: ctl("schedule", "@svc", "--policy", '{"max_retry_attempts": '),
            D.TOML: services_file("[services.@svc\npriority = 1\n"),
        },
        overrides={
            D.TEMPORAL: refused("not valid JSON", None, code=1),
            D.TOML: refused("invalid TOML"),
        },
    ),
    row(
        "deep-json", "JSON (or TOML) nested 20 000 levels deep",
        refused("recursion limit exceeded"),
        {
            D.UPDATE: update("schedule_recovery", f'{{"service_name": "@svc", "policy": {DEEP}}}'),
            D.SIGNAL: signal("schedule_recovery", f'{{"service_name": "@svc", "policy": {DEEP}}}'),
            D.TEMPORAL: temporal_start(f'{{"service_name": "@svc", "policy": {DEEP}}}'),
            D.CTL: ctl("schedule", "@svc", "--policy", DEEP),
            D.TOML: services_file(file_for(f"max_retry_attempts = {DEEP}")),
        },
        overrides={
            D.TEMPORAL: refused("not valid JSON", None, code=1),
            D.TOML: refused("nested too deeply"),
        },
    ),
    row(
        "undecodable", "a payload in an encoding nobody knows (binary/garbage)",
        refused("Unknown payload encoding binary/garbage"),
        {
            D.UPDATE: update("schedule_recovery", RawBytes(b"\x00\xffnot json", b"binary/garbage")),
            D.SIGNAL: signal("schedule_recovery", RawBytes(b"\x00\xffnot json", b"binary/garbage")),
            D.TEMPORAL: temporal_start(doc(), meta="encoding=binary/garbage"),
            D.TOML: services_file(b"\xff\xfe[services]\n"),
        },
        overrides={
            D.TOML: refused("not UTF-8"),
        },
    ),
    row(
        "not-an-object", "a JSON string where an object belongs",
        refused("got str"),
        {
            **scheduling('"just text"', facade_call=schedule_call("@svc", policy="fast")),
            D.CTL: ctl("schedule", "@svc", "--policy", '"fast"'),
            D.TOML: services_file('[services]\n"@svc" = "fast"\n'),
        },
        overrides={
            D.FACADE: refused("policy must be a RecoveryPolicy (or a dict of its fields), got str"),
            D.CTL: refused("Input should be an object"),
            D.TOML: refused("must be a table of settings"),
        },
    ),
    row(
        "null", "JSON null as the whole input",
        refused("got null"),
        {
            **scheduling("null", facade_call=schedule_call(None)),
            D.CTL: ctl("schedule", "@svc", "--policy", "null"),
        },
        overrides={
            D.FACADE: refused("service_name must be a string, got NoneType"),
            D.CTL: refused("Input should be an object"),
        },
    ),
    row(
        "zero-payloads", "no payload at all (no arguments)",
        refused("got 0 inputs"),
        {
            D.FACADE: facade(schedule_call()),
            D.UPDATE: update("schedule_recovery"),
            D.SIGNAL: signal("schedule_recovery"),
            D.TEMPORAL: temporal_start(),
            D.CTL: ctl("schedule"),
        },
        overrides={
            D.FACADE: refused("missing 1 required positional argument", "TypeError"),
            D.CTL: refused("Missing argument 'SERVICE'"),
        },
    ),
    row(
        "two-payloads", "two payloads (or arguments) where one belongs",
        refused("got 2 inputs"),
        {
            D.FACADE: facade(schedule_call("@svc", "immediate", 1, None, "extra")),
            D.UPDATE: update("schedule_recovery", doc(), doc()),
            D.SIGNAL: signal("schedule_recovery", doc(), doc()),
            D.TEMPORAL: temporal_start(doc(), doc()),
            D.CTL: ctl("schedule", "@svc", "@svc-2"),
        },
        overrides={
            D.FACADE: refused("positional arguments but 6 were given", "TypeError"),
            D.CTL: refused("unexpected extra argument"),
        },
    ),
    # ----- fields ------------------------------------------------------------------------
    row(
        "missing-field", "service_name missing",
        refused("service_name: Field required"),
        {
            **scheduling('{"priority": 2}', facade_call=schedule_call(priority=2)),
            D.CTL: ctl("schedule", "--priority", "2"),
        },
        overrides={
            D.FACADE: refused(
                "missing 1 required positional argument: 'service_name'", "TypeError"
            ),
            D.CTL: refused("Missing argument 'SERVICE'"),
        },
    ),
    row(
        "extra-field", "an unknown top-level field",
        refused("surprise: Extra inputs are not permitted"),
        {
            **scheduling(doc(surprise=1), facade_call=schedule_call("@svc", surprise=1)),
            D.CTL: ctl("schedule", "@svc", "--surprise", "1"),
            D.TOML: services_file(file_for("surprise = 1")),
        },
        overrides={
            D.FACADE: refused("unexpected keyword argument 'surprise'", "TypeError"),
            D.CTL: refused("No such option"),
            D.TOML: refused("unknown field 'surprise'"),
        },
    ),
    policy_row(
        "policy-typo", "an unknown policy field (max_retries)",
        refused("max_retries: Extra inputs are not permitted"),
        '{"max_retries": 3}', {"max_retries": 3}, "max_retries = 3",
        overrides={
            D.TOML: refused("unknown field 'max_retries' (did you mean 'max_retry_attempts'?)")
        },
    ),
    row(
        "duplicate-field", "a field given twice (JSON duplicate key, TOML key)",
        refused("duplicate"),
        {
            **scheduling('{"service_name": "@svc", "strategy": "manual", "strategy": "immediate"}'),
            D.CTL: ctl(
                "schedule", "@svc",
                "--policy", '{"max_retry_attempts": 3, "max_retry_attempts": 1}',
            ),
            D.TOML: services_file(file_for('strategy = "manual"\nstrategy = "immediate"')),
        },
        overrides={
            D.TOML: refused("Cannot overwrite a value"),
        },
    ),
    row(
        "priority-text", "wrong type: priority \"high\"",
        refused("priority: Input should be a valid integer"),
        {
            **scheduling(doc(priority="high"), facade_call=schedule_call("@svc", priority="high")),
            D.CTL: ctl("schedule", "@svc", "--priority", "high"),
            D.TOML: services_file(file_for('priority = "high"')),
        },
        overrides={D.CTL: refused("'high' is not a valid integer")},
    ),
    row(
        "name-number", "wrong type: service_name 42",
        refused("service_name must be a string, got int"),
        scheduling(
            '{"service_name": 42}', facade_call=schedule_call(42), temporal_id="recovery-42"
        ),
    ),
    policy_row(
        "bool-number", "wrong type: max_retry_attempts true",
        refused("max_retry_attempts must be a number, not a boolean (true)"),
        '{"max_retry_attempts": true}', {"max_retry_attempts": True}, "max_retry_attempts = true",
        overrides={
            D.TOML: refused("max_retry_attempts: Input should be a valid integer (got True)")
        },
    ),
    row(
        "strategy-unknown", "an unknown strategy (\"sometimes\")",
        refused("strategy: Input should be 'exponential_backoff', 'linear_backoff', 'immediate'"),
        {
            **scheduling(doc(strategy="sometimes"), facade_call=schedule_call("@svc", "sometimes")),
            D.CTL: ctl("schedule", "@svc", "--strategy", "sometimes"),
            D.TOML: services_file(file_for('strategy = "sometimes"')),
        },
        overrides={
            D.CTL: refused("'sometimes' is not one of"),
            D.TOML: refused("strategy: unknown strategy 'sometimes'"),
        },
    ),
    # ----- service names ---------------------------------------------------------------
    name_row("name-slash", "service name with /", "@svc/x", INVALID_NAME),
    name_row("name-space", "service name with a space", "@svc x", INVALID_NAME),
    name_row("name-unicode", "service name with a Cyrillic homoglyph", HOMOGLYPH, INVALID_NAME),
    name_row("name-newline", "service name ending in a newline", "@svc\n", INVALID_NAME),
    name_row("name-empty", "empty service name", "", "service_name '' is invalid"),
    name_row(
        "name-reserved", "a service name whose workflow id is the watch's (circuit-watch-x)",
        "circuit-watch-x", "is reserved",
    ),
    row(
        "name-10kb", "service name of 10 KB",
        refused("got 10240 characters"),
        scheduling(
            json.dumps({"service_name": LONG_NAME}),
            facade_call=schedule_call(LONG_NAME),
            ctl_args=(LONG_NAME,),
            toml_text=file_for("priority = 1", LONG_NAME),
            temporal_id=f"recovery-{LONG_NAME}",
        ),
        overrides={D.TEMPORAL: refused("WorkflowId exceeds maximum allowed length", None, code=1)},
    ),
    # ----- numbers ----------------------------------------------------------------------
    priority_row("priority-minus-1", "priority -1 (valid: any 64-bit integer)", -1,
                 accepted(Ending("succeeded", priority=-1))),
    priority_row("priority-0", "priority 0 (valid)", 0, accepted(Ending("succeeded", priority=0))),
    priority_row("priority-int64-max", "priority 2^63-1 (the largest valid)", 2**63 - 1,
                 accepted(Ending("succeeded", priority=2**63 - 1))),
    priority_row("priority-int64-overflow", "priority 2^63 (past int64)", 2**63,
                 refused("priority: Input should be less than or equal to 9223372036854775807")),
    policy_row(
        "nan", "NaN backoff_multiplier",
        refused("backoff_multiplier: Input should be a finite number"),
        '{"backoff_multiplier": NaN}', {"backoff_multiplier": float("nan")},
        "backoff_multiplier = nan",
        overrides={D.TEMPORAL: refused("not valid JSON", None, code=1)},
    ),
    policy_row(
        "infinity", "+Infinity initial_delay_ms",
        refused("initial_delay_ms: Input should be a finite number"),
        '{"initial_delay_ms": Infinity}', {"initial_delay_ms": float("inf")},
        "initial_delay_ms = inf",
        overrides={
            D.TEMPORAL: refused("not valid JSON", None, code=1),
            D.TOML: refused("initial_delay_ms: Input should be a valid integer (got inf)"),
        },
    ),
    policy_row(
        "minus-infinity", "-Infinity backoff_multiplier",
        refused("backoff_multiplier: Input should be a finite number"),
        '{"backoff_multiplier": -Infinity}', {"backoff_multiplier": float("-inf")},
        "backoff_multiplier = -inf",
        overrides={D.TEMPORAL: refused("not valid JSON", None, code=1)},
    ),
    policy_row(
        "1e400", "1e400 (overflows to infinity) max_delay_ms",
        refused("max_delay_ms: Input should be a finite number"),
        '{"max_delay_ms": 1e400}', {"max_delay_ms": float("inf")}, "max_delay_ms = 1e400",
        overrides={D.TOML: refused("max_delay_ms: Input should be a valid integer (got inf)")},
    ),
    policy_row(
        "delay-order", "max_delay_ms < initial_delay_ms",
        refused("max_delay_ms must be >= initial_delay_ms"),
        '{"initial_delay_ms": 5000, "max_delay_ms": 100}',
        {"initial_delay_ms": 5000, "max_delay_ms": 100},
        "initial_delay_ms = 5000\nmax_delay_ms = 100",
    ),
    policy_row(
        "attempts-1e6", "max_retry_attempts 1 000 000 (history would overflow)",
        refused("max_retry_attempts must be <= 1000"),
        '{"max_retry_attempts": 1000000}', {"max_retry_attempts": 1000000},
        "max_retry_attempts = 1000000",
    ),
    # ----- the constitutional hash -----------------------------------------------------------
    row(
        "hash-wrong", "a wrong constitutional hash",
        refused("expected cdd01ef066bc6cf2, got 'bad'", "RecoveryConstitutionalError", code=1),
        scheduling(doc(constitutional_hash="bad"), facade_call=wrong_hash_schedule),
    ),
    policy_row(
        "policy-hash-wrong", "a wrong constitutional hash inside the policy",
        refused("expected cdd01ef066bc6cf2, got 'bad'", "RecoveryConstitutionalError", code=1),
        '{"constitutional_hash": "bad"}', {"constitutional_hash": "bad"},
        'constitutional_hash = "bad"',
        overrides={D.TOML: refused("unknown field 'constitutional_hash'")},
    ),
    # ----- health checks ----------------------------------------------------------------
    check_row(
        "callable-not-allowed", "a callable check outside the allow-list (os:getpid)",
        accepted(Ending("failed", "not in the worker's RECOVERY_HEALTH_CHECK_MODULES")),
        {"kind": "callable", "ref": "os:getpid"}, '{ kind = "callable", ref = "os:getpid" }',
    ),
    check_row(
        "callable-code", "a callable ref that is code, not module:function",
        refused("ref must look like 'package.module:function'"),
        {"kind": "callable", "ref": "os:system('id')"},
        "{ kind = \"callable\", ref = \"os:system('id')\" }",
    ),
    check_row(
        "url-credentials", "an http check URL with credentials",
        refused("url must not carry credentials"),
        {"kind": "http", "url": "http://admin:s3cret@127.0.0.1:9/health"},
        '{ kind = "http", url = "http://admin:s3cret@127.0.0.1:9/health" }',
        secret="s3cret",
    ),
    check_row(
        "url-file", "an http check with a file: URL",
        refused("url must start with http:// or https://"),
        {"kind": "http", "url": "file:///etc/passwd"},
        '{ kind = "http", url = "file:///etc/passwd" }',
    ),
    check_row(
        "url-link-local", "an http check at a link-local address (169.254.10.20)",
        accepted(Ending("failed", "refused: it is a link-local address")),
        {"kind": "http", "url": "http://169.254.10.20/health"},
        '{ kind = "http", url = "http://169.254.10.20/health" }',
    ),
    check_row(
        "url-metadata", "an http check at the cloud metadata address",
        accepted(Ending("failed", "refused: it is the cloud metadata address")),
        {"kind": "http", "url": "http://169.254.169.254/latest/meta-data/"},
        '{ kind = "http", url = "http://169.254.169.254/latest/meta-data/" }',
    ),
    check_row(
        "url-ipv6-link-local", "an http check at an IPv6 link-local address ([fe80::1])",
        accepted(Ending("failed", "refused: it is a link-local address")),
        {"kind": "http", "url": "http://[fe80::1]/health"},
        '{ kind = "http", url = "http://[fe80::1]/health" }',
    ),
    check_row(
        "tcp-metadata", "a tcp check at the cloud metadata address",
        accepted(Ending("failed", "refused: it is the cloud metadata address")),
        {"kind": "tcp", "host": "169.254.169.254", "port": 80},
        '{ kind = "tcp", host = "169.254.169.254", port = 80 }',
    ),
    # ----- operator actions ------------------------------------------------------------------
    row(
        "approve-not-manual", "approve a recovery that is not manual (in backoff)",
        refused("not awaiting_manual", "RecoveryOrchestratorError", code=1),
        approve_probes("running"),
        roles=("running",),
        overrides={
            D.UPDATE: accepted(fragment="already_running"),
            D.SIGNAL: ignored("not awaiting_manual"),
            D.TEMPORAL: ignored("not awaiting_manual"),
        },
    ),
    row(
        "approve-twice", "approve again while the approved attempt runs",
        refused("is in_progress (phase health_check)", "RecoveryOrchestratorError", code=1),
        approve_probes("approved"),
        roles=("approved",),
        overrides={
            D.UPDATE: accepted(fragment='"outcome": "approved"'),  # joins that attempt
            D.SIGNAL: ignored("not awaiting_manual"),
            D.TEMPORAL: ignored("not awaiting_manual"),
        },
    ),
    row(
        "approve-10kb-note", "approve with a 10 KB note (or operator)",
        refused("at most 2000 characters"),
        {
            **approve_probes("manual", note=LONG_NOTE),
            D.UPDATE: update(
                "execute_recovery", json.dumps({"service_name": "@manual", "operator": LONG_NOTE})
            ),
        },
        roles=("manual",),
        overrides={
            D.UPDATE: refused("at most 200 characters"),
            D.SIGNAL: ignored("at most 2000 characters"),
            D.TEMPORAL: ignored("at most 2000 characters"),
        },
    ),
    row(
        "approve-after-end", "approve a recovery that has ended",
        refused("has already ended succeeded", "RecoveryOrchestratorError", code=1),
        approve_probes("finished"),
        roles=("finished",),
        overrides={
            D.UPDATE: refused("No active recovery task for service"),
            D.SIGNAL: refused("workflow execution already completed", "RPCError"),
            D.TEMPORAL: refused("workflow execution already completed", None, code=1),
        },
    ),
    row(
        "cancel-twice", "cancel a recovery already cancelled",
        refused("No active recovery task for service", code=2),
        {
            D.FACADE: facade(cancel_call("cancelled")),
            D.UPDATE: update("cancel_recovery", json.dumps({"service_name": "@cancelled"})),
            D.SIGNAL: signal("cancel", '{"reason": "again"}', target="recovery-@cancelled"),
            D.TEMPORAL: temporal("workflow", "cancel", "--workflow-id", "recovery-@cancelled"),
            D.CTL: ctl("cancel", "@cancelled"),
        },
        roles=("cancelled",),
        overrides={
            D.FACADE: Expect("no-op", "returned False"),
            D.SIGNAL: refused("workflow execution already completed", "RPCError"),
            # The server takes a cancel request for a closed run as done: nothing changes.
            D.TEMPORAL: accepted(fragment="Canceled workflow"),
            # As `approve` does: it names how the recovery ended (a refused operation, exit 1).
            D.CTL: refused("has already ended cancelled", code=1),
        },
    ),
    row(
        "approve-to-coordinator", "approve sent to the coordinator (no such update)",
        refused("Update handler for 'approve' expected but not found", "RuntimeError", code=1),
        {
            D.UPDATE: update("approve", '{"operator": "hx"}'),
            D.TEMPORAL: temporal(
                "workflow", "update", "execute", "--workflow-id", "@coordinator",
                "--name", "approve", "--input", '{"operator": "hx"}',
            ),
        },
        overrides={D.TEMPORAL: refused("expected but not found", None, code=1)},
    ),
    row(
        "services-file-at-start", "a bad services file given to a recovery-worker process",
        refused("cannot start", None, code=2),
        {D.TOML: worker_start(file_for("priority = 1", "@svc/x"))},
    ),
    # ----- shutdown ------------------------------------------------------------------------
    row(
        "schedule-during-shutdown", "schedule while the orchestrator shuts down",
        Expect(("refused", "accepted"), "not running", state="stopped"),
        {
            D.FACADE: during_shutdown(
                facade(lambda h, svc: h.bystander.schedule_recovery(svc, "immediate"))
            ),
            D.UPDATE: during_shutdown(update("schedule_recovery", doc(strategy="immediate"))),
            D.SIGNAL: during_shutdown(signal("schedule_recovery", doc(strategy="immediate"))),
        },
    ),
    row(
        "schedule-after-shutdown", "schedule after the orchestrator was shut down",
        refused("not running", "RecoveryOrchestratorError", code=1),
        {
            D.FACADE: facade(lambda h, svc: h.bystander.schedule_recovery(svc, "immediate")),
            D.UPDATE: update("schedule_recovery", doc()),
            D.SIGNAL: signal("schedule_recovery", doc()),
            D.TEMPORAL: temporal(
                "workflow", "update", "execute", "--workflow-id", "@coordinator",
                "--name", "schedule_recovery", "--input", doc(),
            ),
            D.CTL: ctl("schedule", "@svc"),
        },
        overrides={D.TEMPORAL: refused("not running", None, code=1)},
        needs="stopped",
    ),
    # ----- the control: run last at every door -----------------------------------------
    row(
        "control", "a good recovery still completes (after every row above)",
        accepted(Ending("succeeded")),
        good_recovery(),
    ),
]


# Every cell of the table: (door, row).
CELLS: list[tuple[Door, Row]] = [(d, r) for r in TABLE for d in ALL_DOORS if d in r.cells]


def roles_of(door: Door) -> list[Role]:
    """Return the roles (recoveries in known states) the door's rows need."""
    return sorted({role for d, r in CELLS if d is door for role in r.roles})
