"""Soak: rounds of random person edits on both tools, faulty and killed syncs, then a check.

Usage (from the repository root, with the project's virtualenv):

    .venv/bin/python bench/soak.py [--rounds 50] [--jira-mode both] [--seed 1]
                                   [--fault-rate 0.2] [--kill-rate 0.3] [--json FILE]

Contract:
- For each Jira flavour asked for (Cloud, Data Center or both) the soak serves
  a fresh ServiceNow and Jira sandbox on loopback from this process, seeds
  ``--records`` incidents on each side, and plays ``--rounds`` rounds. A round
  makes 1-4 random person edits through the sandboxes' in-process helpers
  (titles, statuses incl. resolve and reopen, impact, urgency, assignees,
  public and internal comments; now and then a new incident; field edits as a
  person, never as the integration user), then runs
  ``python -m sync.cli run`` in a child process while both sandboxes inject
  ``--fault-rate`` faults (429, 500, 503, dropped connections and replies lost
  after the write was carried out) and, with ``--kill-rate``, the child gets
  SIGINT or SIGKILL when a random request of it arrives (the sandbox then
  serves that request anyway).
- Every person edit is tracked (side, record, neutral field, neutral value as
  the edited tool reads it back, time) and so is every comment. After the
  rounds, faults and kills stop and quiet runs follow until one writes nothing
  (at most four). Then the soak counts, per flavour:
  * ``duplicates``: records with more than one copy (by the id copies carry),
    records in more than one link, comments present more than once;
  * ``unlinked``: records in no link after the quiet runs;
  * ``lost_edits``: fields of a pair not holding the latest person's value on
    both sides (where both sides changed the field between the same two clean
    runs, either side's latest value may win: the conflict policy decides);
  * ``lost_comments``: comments missing on either side of their pair;
  * ``internal_made_public``: internal comments visible publicly on any side;
  * ``audit_drift``: pairs ``audit`` finds differing, plus orphans, except
    pairs differing only in a resolution code as the README documents (the
    profile's lossy resolution map; the close code a reopened ServiceNow
    incident keeps): those are reported apart as ``known_divergences``;
  * ``unexpected_exits``: runs that ended other than 0, 1 or 3 (or killed),
    or printed a traceback; ``unsettled``: quiet runs still writing.
  Those must all be zero. Also reported: rounds, edits, comments, faults,
  kills (SIGINT / SIGKILL), runs and their exit codes, and the time taken.
- The last stdout line is the one-line verdict (``soak: OK ...`` or
  ``soak: FAIL ...`` naming the non-zero figures); the exit status is 0 when
  every must-be-zero figure is zero, 1 otherwise, 2 for bad arguments.
  ``--json FILE`` writes every figure and the findings' details.
- Progress goes to stderr. Nothing leaves 127.0.0.1; the child gets the
  sandbox secrets in its environment only.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # Run as a script: bench is not an installed package, so make the
    # repository root importable (the project packages are installed editable).
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.soak_world import (
    AGENTS,
    JIRA_IMPACTS,
    JIRA_URGENCIES,
    Edit,
    Note,
    Reader,
    jira_comments,
    servicenow_comments,
)
from connectors.sandbox.http import FaultPlan, Request, Response
from connectors.sandbox.jira import JiraSandbox
from connectors.sandbox.jira_site import account_id_for
from connectors.sandbox.servicenow import ServiceNowSandbox

USER = "admin"
PASSWORD = "sandbox"   # the sandboxes' own test credential, never a real one
SECRETS = {"INCIDENT_SYNC_SERVICENOW__PASSWORD": PASSWORD,
           "INCIDENT_SYNC_JIRA__TOKEN": PASSWORD}
MUST_BE_ZERO = ("duplicates", "unlinked", "lost_edits", "lost_comments",
                "internal_made_public", "audit_drift", "unexpected_exits", "unsettled")
QUIET_RUNS = 4
CHILD_TIMEOUT = 180.0    # seconds; a run still going then is a hang
MAX_KILL_REQUEST = 40    # the kill lands on one of the child's first N requests
MAX_RECORDS = 12         # per side, so a long soak's runs stay short
TITLES = ["VPN drops every 5 minutes", "Outlook crashes on attachments",
          "Printer on floor 3 jammed", "SQL job failing nightly", "Wifi down on floor 2",
          "Laptop will not boot", "Payroll export times out", "Zugriff verweigert"]
PHRASES = ["Restarted the client", "Caller confirms it works", "Escalated to the vendor",
           "Gateway logs show drops", "Waiting for the change window", "Ünïcode ✓ note"]
SN_STATES = {"2": "in progress", "3": "on hold", "6": "resolved"}
JIRA_STATUSES = ["Work in progress", "Pending", "Resolved"]
CLOSE_CODES = ["Solution provided", "Workaround provided", "Resolved by caller"]
# Person edits are made as this person, never as the integration user (USER): the
# tools' histories are how the sync tells a person's edit from its own write (a
# write whose reply was lost, then undone by a person, is only seen that way), and
# an edit under the sync's own account is rightly taken as the sync's own.
PERSON = "elif.yilmaz"
PERSON_EMAIL = f"{PERSON}@example.com"


class CountingFaults(FaultPlan):
    """The sandbox's seeded fault plan, counting the faults it injected."""

    injected: int = 0

    def pick(self, method: str, path: str) -> Any:
        fault = super().pick(method, path)
        if fault is not None:
            self.injected += 1
        return fault


def fault_plan(rate: float, seed: int) -> CountingFaults:
    """``rate`` of all requests faulted: 429, 500, 503, dropped sockets, lost replies."""
    return CountingFaults(rate_429=rate * 0.3, rate_500=rate * 0.15, rate_503=rate * 0.15,
                          rate_drop=rate * 0.15, rate_lost=rate * 0.25, retry_after=0,
                          seed=seed)


class KillSwitch:
    """Signals the child when its ``nth`` request (both sandboxes counted) arrives.

    The sandbox serves that request anyway: under SIGKILL a write lands that the
    child never hears of, the worst moment for the state store."""

    def __init__(self, servers: list[Any]) -> None:
        self.lock = threading.Lock()
        self.seen = 0
        self.nth = 0
        self.sig: int | None = None
        self.pid: int | None = None
        self.fired = False
        for server in servers:
            serve: Callable[[Request], Response] = server.handle
            server.handle = self._wrap(serve)

    def _wrap(self, serve: Callable[[Request], Response]) -> Callable[[Request], Response]:
        def handle(request: Request) -> Response:
            if not request.path.startswith("/_sandbox"):
                with self.lock:
                    self.seen += 1
                    hit = (self.sig is not None and self.pid is not None and not self.fired
                           and self.seen == self.nth)
                    if hit:
                        self.fired = True
                if hit:
                    assert self.pid is not None and self.sig is not None
                    os.kill(self.pid, self.sig)
            return serve(request)

        return handle

    def arm(self, pid: int, nth: int, sig: int | None) -> None:
        with self.lock:
            self.seen, self.nth, self.sig, self.pid, self.fired = 0, nth, sig, pid, False

    def disarm(self) -> None:
        with self.lock:
            self.sig = self.pid = None


@dataclass
class Figures:
    """What one flavour's soak did and found."""

    mode: str
    rounds: int = 0
    edits: int = 0
    comments: int = 0
    creates: int = 0
    faults: int = 0
    kills_sigint: int = 0
    kills_sigkill: int = 0
    runs: int = 0
    exit_codes: dict[str, int] = field(default_factory=dict)
    quiet_runs: int = 0
    duplicates: int = 0
    unlinked: int = 0
    lost_edits: int = 0
    lost_comments: int = 0
    internal_made_public: int = 0
    audit_drift: int = 0
    unexpected_exits: int = 0
    unsettled: int = 0
    known_divergences: int = 0   # pairs differing only as the README documents
    seconds: float = 0.0
    findings: list[str] = field(default_factory=list)

    @property
    def kills(self) -> int:
        return self.kills_sigint + self.kills_sigkill

    def bad(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in MUST_BE_ZERO if getattr(self, name)}


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class Soak:
    """One flavour's sandboxes, edits, runs and final check."""

    def __init__(self, mode: str, *, rounds: int, records: int, seed: int, fault_rate: float,
                 kill_rate: float, workdir: Path, verbose: bool = False) -> None:
        self.mode = mode
        self.rounds = rounds
        self.records = records
        self.random = random.Random(f"{seed}-{mode}")
        self.seed = seed
        self.fault_rate = fault_rate
        self.kill_rate = kill_rate
        self.workdir = workdir
        self.verbose = verbose
        self.figures = Figures(mode=mode)
        self.edits: list[Edit] = []
        self.notes: list[Note] = []
        self.epoch = 0           # clean runs (exit 0, not killed) so far
        self.servicenow = ServiceNowSandbox(username=USER, password=PASSWORD)
        self.jira = JiraSandbox(mode=mode, username=USER, password=PASSWORD)
        self.config = workdir / "incident-sync.toml"

    # ------------------------------------------------------------------ plumbing

    @contextmanager
    def serving(self) -> Iterator[None]:
        with self.servicenow, self.jira:
            # (A killed child resets its connections mid-request: the sandboxes
            # take that quietly, see SandboxServer.)
            self.switch = KillSwitch([self.servicenow, self.jira])
            self._write_config()
            self.reader = Reader(self.config, SECRETS)
            try:
                yield
            finally:
                self.reader.close()

    def _write_config(self) -> None:
        # Items never park (max_attempts 100) and are due at once (base 0 s):
        # a parked item would stop converging by design, which is not the point.
        self.config.write_text(
            f'[servicenow]\ninstance_url = "{self.servicenow.url}"\n'
            f'username = "{USER}"\nquery = ""\n\n'
            f'[jira]\nurl = "{self.jira.url}"\nemail = "{USER}"\nproject = "OPS"\n\n'
            '[sync]\nstate_url = "sqlite:///state.db"\nretry_base_seconds = 0.0\n'
            'max_attempts = 100\nconflict = "newest"\n',
            encoding="utf-8",
        )

    def run_child(self, *, faults: bool, kill: bool) -> int:
        """One ``incident-sync run`` in a child process; returns its exit code."""
        rate = self.fault_rate if faults else 0.0
        plans = [fault_plan(rate, self.random.randrange(2**31)) for _ in range(2)]
        self.servicenow.faults, self.jira.faults = plans
        sig = None
        if kill and self.random.random() < self.kill_rate:
            sig = self.random.choice([signal.SIGINT, signal.SIGKILL])
        env = {**os.environ, **SECRETS, "COLUMNS": "200"}
        child = subprocess.Popen(
            [sys.executable, "-m", "sync.cli", "run", "--config", str(self.config)],
            cwd=self.workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.switch.arm(child.pid, self.random.randint(1, MAX_KILL_REQUEST), sig)
        try:
            out, err = child.communicate(timeout=CHILD_TIMEOUT)
        except subprocess.TimeoutExpired:
            child.kill()
            out, err = child.communicate()
            self.figures.findings.append(f"run hung for {CHILD_TIMEOUT:.0f} s and was killed")
            self.figures.unexpected_exits += 1
        finally:
            self.switch.disarm()
            self.servicenow.faults, self.jira.faults = FaultPlan(), FaultPlan()
        fired = self.switch.fired
        self.figures.faults += sum(p.injected for p in plans)
        self.figures.runs += 1
        code = child.returncode
        self.figures.exit_codes[str(code)] = self.figures.exit_codes.get(str(code), 0) + 1
        if fired and sig == signal.SIGKILL:
            self.figures.kills_sigkill += 1
        elif fired:
            self.figures.kills_sigint += 1
        text = err.decode("utf-8", "replace")
        expected = {0, 1, 3} | ({1, -int(signal.SIGINT), -int(signal.SIGKILL)} if fired else set())
        if code not in expected or "Traceback" in text:
            self.figures.unexpected_exits += 1
            self.figures.findings.append(
                f"run exited {code} ({'killed' if fired else 'not killed'}): "
                f"{' | '.join(text.strip().splitlines()[-3:])}")
        if self.verbose:
            summary = out.decode("utf-8", "replace").strip().splitlines()[-1:]
            log(f"    run exit {code}{' (killed)' if fired else ''}: {' '.join(summary)}")
        if code == 0 and not fired:
            self.epoch += 1
        return code

    def writes(self) -> int:
        return sum(server.log.writes() for server in (self.servicenow, self.jira))

    # ------------------------------------------------------------------ person edits

    def seed_records(self) -> None:
        for _ in range(self.records):
            self.create("servicenow")
            self.create("jira")

    def create(self, side: str) -> None:
        title = f"{self.random.choice(TITLES)} #{self.figures.creates + 1}"
        if side == "servicenow":
            sn = self.servicenow
            row = sn.insert("incident", {
                "short_description": title, "description": f"{title}: details",
                "impact": "2", "urgency": "2", "category": "network",
                "caller_id": sn.user_sys_id("grace.okafor"),
            })
            record_id = row["sys_id"]
        else:
            record_id = self.jira.create_issue({
                "summary": title, "description": f"{title}: details",
                "customfield_10004": {"value": "Moderate / Limited"},
                "customfield_10005": {"value": "Medium"},
            })
        self.figures.creates += 1
        self.comment(side, record_id)

    def sn_ids(self) -> list[str]:
        return [row["sys_id"] for row in self.servicenow.rows("incident")]

    def person_edit(self) -> None:
        side = self.random.choice(["servicenow", "jira"])
        ids = self.sn_ids() if side == "servicenow" else self.jira.issue_keys()
        record_id = self.random.choice(ids)
        kind = self.random.choice(["title", "status", "status", "impact", "urgency",
                                   "assignee", "comment", "comment"])
        if kind == "comment":
            self.comment(side, record_id)
            return
        if side == "servicenow":
            changed = self._edit_servicenow(record_id, kind)
        else:
            changed = self._edit_jira(record_id, kind)
        if changed:
            value = self.reader.value(side, record_id, kind)
            self.edits.append(Edit(side, record_id, kind, value, time.time(), self.epoch))
            self.figures.edits += 1

    def _edit_servicenow(self, sys_id: str, kind: str) -> bool:
        sn = self.servicenow
        row = sn.get("incident", sys_id) or {}
        if kind == "title":
            values = {"short_description": f"{self.random.choice(TITLES)} (edit "
                                           f"{self.figures.edits + 1})"}
        elif kind == "status":
            state = self.random.choice([s for s in SN_STATES if s != row.get("state")])
            values = {"state": state}
            if state == "6":   # resolve: ServiceNow's data policy wants code and notes
                code = self.random.choice(CLOSE_CODES)
                values.update(close_code=code, close_notes=f"Closed: {code.lower()}")
            elif state == "3":
                values["hold_reason"] = self.random.choice("1345")
        elif kind in ("impact", "urgency"):
            values = {kind: self.random.choice([v for v in "123" if v != row.get(kind)])}
        else:
            values = {"assigned_to": sn.user_sys_id(self.random.choice(AGENTS))}
        sn.update("incident", sys_id, values, as_user=PERSON)
        return True

    def _edit_jira(self, key: str, kind: str) -> bool:
        jira = self.jira
        fields = jira.issue(key)["fields"]
        if kind == "title":
            jira.edit_issue(key, {"summary": f"{self.random.choice(TITLES)} (edit "
                                             f"{self.figures.edits + 1})"},
                            as_user=PERSON_EMAIL)
        elif kind == "status":
            current = fields["status"]["name"]
            target = self.random.choice([s for s in JIRA_STATUSES if s != current])
            jira.transition_issue(key, target, resolution="Done", as_user=PERSON_EMAIL)
        elif kind == "impact":
            jira.edit_issue(key, {"customfield_10004": {"value": self.random.choice(
                JIRA_IMPACTS)}}, as_user=PERSON_EMAIL)
        elif kind == "urgency":
            jira.edit_issue(key, {"customfield_10005": {"value": self.random.choice(
                JIRA_URGENCIES)}}, as_user=PERSON_EMAIL)
        else:
            agent = self.random.choice(AGENTS)
            jira.edit_issue(key, {"assignee": (
                {"accountId": account_id_for(f"{agent}@example.com")} if jira.cloud
                else {"name": agent})}, as_user=PERSON_EMAIL)
        return True

    def comment(self, side: str, record_id: str) -> None:
        internal = self.random.random() < 0.5
        n = len(self.notes) + 1
        text = f"soak note {n}: {PHRASES[n % len(PHRASES)]}"
        if side == "servicenow":
            self.servicenow.update("incident", record_id,
                                   {"work_notes" if internal else "comments": text})
        else:
            self.jira.add_comment(record_id, text, internal=internal,
                                  author_email=f"{self.random.choice(AGENTS)}@example.com")
        self.notes.append(Note(side, record_id, text, internal))
        self.figures.comments += 1

    # ------------------------------------------------------------------ the soak

    def play(self) -> Figures:
        began = time.monotonic()
        with self.serving():
            self.seed_records()
            for number in range(1, self.rounds + 1):
                for _ in range(self.random.randint(1, 4)):
                    self.person_edit()
                if self.random.random() < 0.1:
                    side = self.random.choice(["servicenow", "jira"])
                    count = len(self.sn_ids()) if side == "servicenow" else len(
                        self.jira.issue_keys())
                    if count < MAX_RECORDS:
                        self.create(side)
                code = self.run_child(faults=True, kill=True)
                self.figures.rounds = number
                log(f"  {self.mode} round {number}/{self.rounds}: exit {code}, "
                    f"{self.figures.edits} edits, {self.figures.faults} faults, "
                    f"{self.figures.kills} kills")
            self.quiet()
            self.check()
        self.figures.seconds = round(time.monotonic() - began, 1)
        return self.figures

    def quiet(self) -> None:
        """Fault-free runs until one writes nothing."""
        for _ in range(QUIET_RUNS):
            for server in (self.servicenow, self.jira):
                server.log.clear()
            self.figures.quiet_runs += 1
            code = self.run_child(faults=False, kill=False)
            if code == 0 and self.writes() == 0:
                return
        self.figures.unsettled = 1
        self.figures.findings.append(f"still writing after {QUIET_RUNS} quiet runs")

    # ------------------------------------------------------------------ the check

    def check(self) -> None:
        figures = self.figures
        links = self.reader.links()
        sn_rows = self.servicenow.rows("incident")
        keys = self.jira.issue_keys()
        linked = {"servicenow": Counter(link.id_on("servicenow") for link in links),
                  "jira": Counter(link.id_on("jira") for link in links)}
        for side, ids in (("servicenow", [r["sys_id"] for r in sn_rows]), ("jira", keys)):
            for record_id in ids:
                if linked[side][record_id] == 0:
                    figures.unlinked += 1
                    figures.findings.append(f"{side} {record_id} is in no link")
            for record_id, times in linked[side].items():
                if times > 1:
                    figures.duplicates += times - 1
                    figures.findings.append(f"{side} {record_id} is in {times} links")
        # Copies, found by the id each carries: one per source at most.
        carried = Counter(label for key in keys
                          for label in self.jira.issue(key)["fields"]["labels"]
                          if label.startswith("snow-"))
        carried.update(f"jira-{row['correlation_id']}" for row in sn_rows
                       if row.get("correlation_id"))
        for marker, times in carried.items():
            if times > 1:
                figures.duplicates += times - 1
                figures.findings.append(f"{times} records carry {marker}")
        pair_of = {("servicenow", link.id_on("servicenow")): link for link in links}
        pair_of.update({("jira", link.id_on("jira")): link for link in links})
        self._check_edits(pair_of)
        self._check_comments(pair_of)
        drift, details = self.reader.audit_drift()
        figures.audit_drift = drift["differing"] + drift["orphans"]
        figures.known_divergences = drift["known"]
        figures.findings.extend(f"audit: {detail}" for detail in details)

    def _check_edits(self, pair_of: dict[tuple[str, str], Any]) -> None:
        by_pair: dict[tuple[int, str], list[Edit]] = {}
        for edit in self.edits:
            link = pair_of.get((edit.side, edit.record_id))
            if link is not None:
                by_pair.setdefault((link.id, edit.field), []).append(edit)
        for (link_id, name), edits in sorted(by_pair.items()):
            link = next(v for v in pair_of.values() if v.id == link_id)
            latest = max(edits, key=lambda e: e.at)
            # Both sides changed the field between the same two clean runs: the
            # conflict policy picks one of their latest values.
            rivals = [e for e in edits if e.epoch == latest.epoch]
            wanted = {}
            for edit in sorted(rivals, key=lambda e: e.at):
                wanted[edit.side] = edit
            held = self.reader.pair_holds(link, name, list(wanted.values()))
            if held is None:
                self.figures.lost_edits += 1
                options = " or ".join(f"{e.side} {e.value!r}" for e in wanted.values())
                history = ", ".join(f"{e.side} {e.value!r} (after clean run {e.epoch})"
                                    for e in sorted(edits, key=lambda e: e.at))
                self.figures.findings.append(
                    f"lost edit: {name} of {link.display_on('servicenow')} <-> "
                    f"{link.id_on('jira')} "
                    f"should hold {options}; holds "
                    f"{self.reader.pair_values(link, name)}; person edits: {history}"
                )

    def _check_comments(self, pair_of: dict[tuple[str, str], Any]) -> None:
        seen: dict[int, dict[str, Counter[tuple[str, bool]]]] = {}
        for note in self.notes:
            link = pair_of.get((note.side, note.record_id))
            if link is None:
                self.figures.lost_comments += 1
                self.figures.findings.append(f"comment {note.text!r}: its record is unlinked")
                continue
            if link.id not in seen:
                seen[link.id] = {
                    "servicenow": servicenow_comments(self.servicenow, link.id_on("servicenow")),
                    "jira": jira_comments(self.jira, link.id_on("jira")),
                }
            for side, got in seen[link.id].items():
                same = got[(note.text, note.internal)]
                flipped = got[(note.text, not note.internal)]
                where = f"{side} of {link.display_on('servicenow')} <-> {link.id_on('jira')}"
                if same + flipped == 0:
                    self.figures.lost_comments += 1
                    self.figures.findings.append(f"lost comment {note.text!r} on {where}")
                if same + flipped > 1:
                    self.figures.duplicates += same + flipped - 1
                    self.figures.findings.append(
                        f"comment {note.text!r} {same + flipped} times on {where}")
                if note.internal and flipped:
                    self.figures.internal_made_public += 1
                    self.figures.findings.append(f"internal {note.text!r} public on {where}")


def verdict(all_figures: list[Figures]) -> tuple[str, int]:
    """The one-line verdict and the exit status."""
    total = Figures(mode="+".join(f.mode for f in all_figures))
    for f in all_figures:
        for name in ("rounds", "edits", "comments", "faults", "kills_sigint", "kills_sigkill",
                     "known_divergences", *MUST_BE_ZERO):
            setattr(total, name, getattr(total, name) + getattr(f, name))
    bad = total.bad()
    head = "soak: FAIL" if bad else "soak: OK"
    line = (f"{head} ({total.mode}): {total.rounds} rounds, {total.edits} edits, "
            f"{total.comments} comments, {total.faults} faults, {total.kills} kills; "
            + ", ".join(f"{name.replace('_', ' ')} {getattr(total, name)}"
                        for name in MUST_BE_ZERO)
            + f" (known divergences {total.known_divergences})")
    return line, 1 if bad else 0


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 <= value <= 0.9:
        raise argparse.ArgumentTypeError(f"must be between 0 and 0.9, got {value}")
    return value


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:
        # One line naming the option, not argparse's usage block first.
        self.exit(2, f"{self.prog}: {message}\n")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = _Parser(prog="bench/soak.py", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=_positive, default=50, help="rounds per Jira flavour")
    parser.add_argument("--records", type=_positive, default=3,
                        help="incidents seeded on each side")
    parser.add_argument("--jira-mode", choices=["cloud", "datacenter", "both"], default="both")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fault-rate", type=_rate, default=0.2)
    parser.add_argument("--kill-rate", type=_rate, default=0.3)
    parser.add_argument("--json", type=Path, default=None, help="write every figure here")
    parser.add_argument("--verbose", action="store_true", help="each run's summary line")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    modes = ["cloud", "datacenter"] if args.jira_mode == "both" else [args.jira_mode]
    results = []
    for mode in modes:
        workdir = Path(tempfile.mkdtemp(prefix=f"incident-sync-soak-{mode}-"))
        try:
            log(f"soak {mode}: {args.rounds} rounds, seed {args.seed}, faults "
                f"{args.fault_rate:.0%}, kills {args.kill_rate:.0%}")
            soak = Soak(mode, rounds=args.rounds, records=args.records, seed=args.seed,
                        fault_rate=args.fault_rate, kill_rate=args.kill_rate, workdir=workdir,
                        verbose=args.verbose)
            figures = soak.play()
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        results.append(figures)
        for finding in figures.findings:
            print(f"{mode}: {finding}")
        print(f"{mode}: " + json.dumps({k: v for k, v in asdict(figures).items()
                                        if k not in ("findings", "mode")}))
    line, code = verdict(results)
    print(line)
    if args.json is not None:
        try:
            args.json.write_text(json.dumps(
                {"args": {k: str(v) for k, v in vars(args).items()},
                 "results": [asdict(r) for r in results], "verdict": line},
                indent=2, ensure_ascii=False), encoding="utf-8")
        except OSError as error:
            print(f"bench/soak.py: --json {args.json}: cannot write: {error.strerror}",
                  file=sys.stderr)
            return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
