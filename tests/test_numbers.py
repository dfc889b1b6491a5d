"""One number format (sessions/numbers.py), checked by hand, and `sessions list` on a terminal of 80 columns
and piped."""
from __future__ import annotations

import os
import pty
import select
import subprocess

import pytest

from conftest import ROOT, cli, cli_env
from sessions.numbers import FRACTION, NUMBER, PERCENT, P_VALUE, SECONDS, fmt, fmt_delta, fmt_mean_std, \
    format_duration, shown, unit
from sessions.store import SessionStore
from workbench.text_table import Column, fit_lines, tsv_lines


# --- which metrics are fractions ---------------------------------------------------------------------
@pytest.mark.parametrize("name", ["df_dr_auc", "mia.auc", "mia.attack_auc", "mia.df_member_rate",
                                  "mia.test_member_rate", "forget.image", "retain.text", "forget_all.image",
                                  "other.text", "mmbench", "auc_gap_to_retrain", "holdout_identity.image",
                                  "holdout_identity.text"])
def test_fractions(name):
    assert unit(name) == FRACTION


@pytest.mark.parametrize("name", ["test.r_mean", "df.r_mean", "test.txt_r1", "dr.img_r10", "test.r1_i2t",
                                  "test.accuracy", "df.accuracy", "mmbench_retention", "test_gap_to_retrain",
                                  "holdout_identity.accuracy", "holdout_association.r_mean"])
def test_percents(name):
    assert unit(name) == PERCENT


def test_other_units():
    assert unit("forget_quality") == P_VALUE and unit("seconds") == SECONDS
    assert unit("lr") == unit("total") == unit(None) == unit("image") == NUMBER  # a bare "image" is no group


# --- values, deltas, durations ------------------------------------------------------------------------
def test_values_in_percent_with_one_decimal():
    assert fmt(0.7032, "df_dr_auc") == "70.3"          # a fraction x100
    assert fmt(50.23, "test.r_mean") == "50.2"         # stored in percent already
    assert fmt(1.811, "test.txt_r1") == "1.8"
    assert fmt(0.25, "forget.image") == "25.0"         # four-option accuracy on people data: a fraction
    assert fmt(95.16, "mmbench_retention") == "95.2"
    assert fmt(1.0, "mia.df_member_rate") == "100.0" and fmt(0, "df_dr_auc") == "0.0"
    assert shown("df_dr_auc", 0.5) == 50.0 and shown("test.r_mean", 50.0) == 50.0


def test_nothing_text_and_other_numbers():
    assert fmt(None, "df_dr_auc") == "-" and fmt(float("nan"), "df_dr_auc") == "nan"
    assert fmt("clip-tiny") == "clip-tiny" and fmt(3) == "3" and fmt(True) == "True"
    assert fmt(0.0123, "forget_quality") == "0.012"    # a p-value: two significant digits
    assert fmt(0.001234567, "lr") == "0.001235"        # anything else: four


def test_deltas_signed_one_decimal():
    assert fmt_delta(0.7032, 0.7152, "df_dr_auc") == "+1.2"
    assert fmt_delta(50.0, 49.6, "test.r_mean") == "-0.4"
    assert fmt_delta(0.91, 0.52, "df_dr_auc") == "-39.0"
    # from the values as shown: 67.2 -> 62.9 is -4.3 (the raw difference, -4.398, would show -4.4)
    assert (fmt(0.67249, "df_dr_auc"), fmt(0.62851, "df_dr_auc")) == ("67.2", "62.9")
    assert fmt_delta(0.67249, 0.62851, "df_dr_auc") == "-4.3"
    assert fmt_delta(0.5, 0.5, "df_dr_auc") == "+0.0" and fmt_delta(50.0, 49.99, "test.r_mean") == "+0.0"
    assert fmt_delta(None, 0.5, "df_dr_auc") == "-" and fmt_delta(0.5, None) == "-"
    assert fmt_delta(45, 200, "seconds") == "+2 m 35 s" and fmt_delta(1, 2, "total") == "+1"


def test_durations_humanised():
    assert format_duration(45) == "45 s" and format_duration(0) == "0 s" and format_duration(59.6) == "1 m 00 s"
    assert format_duration(200) == "3 m 20 s" and format_duration(3599) == "59 m 59 s"
    assert format_duration(3900) == "1 h 05 m" and format_duration(90061) == "25 h 01 m"
    assert format_duration(1.5) == "1.5 s" and format_duration(-3) == "0 s"
    assert fmt(200.0, "seconds") == "3 m 20 s"


def test_mean_std():
    assert fmt_mean_std({"mean": 0.7032, "std": 0.0123, "n": 3}, "df_dr_auc") == "70.3 ± 1.2"
    assert fmt_mean_std({"mean": 50.0, "std": 0.0, "n": 1}, "test.r_mean") == "50.0"  # one seed: no spread
    assert fmt_mean_std({"mean": 200.0, "std": 5.0, "n": 2}, "seconds") == "3 m 20 s ± 5 s"
    assert fmt_mean_std(None, "df_dr_auc") == "-"


# --- text tables --------------------------------------------------------------------------------------
def test_fit_lines_cuts_then_drops_and_never_exceeds_the_width():
    columns = [Column("id"), Column("what", shrink=4), Column("when", drop=1), Column("n", right=True)]
    rows = [["a1", "x" * 50, "2026-01-01", "7.0"], ["b2", "short", "-", "70.3"]]
    wide = fit_lines(columns, rows, 200)
    assert wide[1].split() == ["a1", "x" * 50, "2026-01-01", "7.0"] and wide[2].endswith("70.3")
    narrow = fit_lines(columns, rows, 30)
    assert all(len(line) <= 30 for line in narrow) and "when" in narrow[0] and "…" in narrow[1]
    tiny = fit_lines(columns, rows, 16)  # "when" dropped, "what" cut to its floor
    assert all(len(line) <= 16 for line in tiny) and "when" not in tiny[0] and tiny[2].endswith("70.3")
    assert tsv_lines(columns, [["a", "b\tc\nd", "e", "f"]]) == ["id\twhat\twhen\tn", "a\tb c d\te\tf"]


# --- `sessions list` ----------------------------------------------------------------------------------
LONG = "a-model-name-that-goes-on-and-on-" * 3


@pytest.fixture
def listed(tmp_path, monkeypatch):
    monkeypatch.setenv("MMUL_HOME", str(tmp_path))
    store = SessionStore(tmp_path)
    for i in range(3):
        writer = store.create({"method": "multidelete", "model": LONG, "data": "shapes-tiny" + "-x" * 20,
                               "deletion": {"strategy": "random", "n": 4, "seed": i}}, name=f"run {i}")
        writer.finish("finished", summary={"seconds": 200.0, "metrics": {
            "df_dr_auc": 0.7032, "test": {"r_mean": 50.23}, "mia": {"df_member_rate": 0.1}}})
    return tmp_path


def on_terminal(home, columns: int) -> list[str]:
    """`sessions list` with its stdout on a pseudo-terminal of ``columns`` columns."""
    master, slave = pty.openpty()
    env = dict(cli_env(home), COLUMNS=str(columns), LINES="24", TERM="xterm")
    proc = subprocess.Popen(cli("sessions", "list"), env=env, cwd=ROOT, stdout=slave, stderr=subprocess.PIPE)
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 30)
        if not ready:
            break
        try:
            data = os.read(master, 65536)
        except OSError:  # the child closed its end
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=30)
    os.close(master)
    assert proc.returncode == 0, proc.stderr.read()
    return b"".join(chunks).decode().replace("\r\n", "\n").splitlines()


def test_sessions_list_fits_80_columns_one_line_a_session(listed):
    lines = on_terminal(listed, 80)
    assert len(lines) == 1 + 3 and all(len(line) <= 80 for line in lines), lines
    assert lines[0].startswith("id") and "Df/Dr AUC" in lines[0]
    for line in lines[1:]:
        assert "finished" in line and "70.3" in line and "50.2" in line and "…" in line  # the long names cut


def test_sessions_list_piped_is_tab_separated(listed):
    out = subprocess.run(cli("sessions", "list"), env=cli_env(listed), cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    header, rows = lines[0].split("\t"), [line.split("\t") for line in lines[1:]]
    assert header == ["id", "name", "state", "method", "model", "data", "created", "took", "steps", "Df/Dr AUC", "test",
                      "MIA Df member"]
    assert len(rows) == 3 and all(len(row) == len(header) for row in rows)
    row = dict(zip(header, rows[0]))
    assert row["model"] == LONG and row["Df/Dr AUC"] == "70.3" and row["test"] == "50.2" and row["MIA Df member"] == "10.0"
    assert row["name"] == "run 2"  # newest first
    assert row["state"] == "finished" and row["took"] == "3 m 20 s"  # the run's own seconds, humanised


def test_forget_quality_of_an_even_count_of_seeds_says_it_is_the_lower_median():
    """Two seeds read `1.1e-07 (median of 1.7e-06, 1.1e-07)`: the lower of the two, which nothing said."""
    from sessions.numbers import fmt_mean_std

    two = {"median": 1.1e-07, "per_seed": {"42": 1.7e-06, "87": 1.1e-07}, "n": 2}
    assert fmt_mean_std(two, "forget_quality") == "1.1e-07 (lower median of 1.7e-06, 1.1e-07)"
    three = {"median": 0.003, "per_seed": {"42": 0.00067, "87": 0.035, "21": 0.003}, "n": 3}
    assert fmt_mean_std(three, "forget_quality") == "0.003 (median of 0.00067, 0.035, 0.003)"


def test_a_pulse_runs_progress_lines_carry_its_numbers(capsys):
    """`pulse ga: eval (before) ` printed nothing after it on people data: its headlines are the forget and
    retain accuracies."""
    from workbench.output import Progress

    with Progress("pulse ga") as progress:
        progress.event("eval", {"split": "before", "metrics": {"forget.image": 1.0, "retain.text": 0.75}})
    assert "pulse ga: eval (before) forget.image=100.0, retain.text=75.0" in capsys.readouterr().err


def test_a_sequences_progress_lines_say_which_request(capsys):
    """A run of K requests printed `ga: unlearn` and `ga: eval (after) ...` K times, none saying which request."""
    from workbench.output import Progress

    with Progress("ga", requests=8) as progress:
        progress.event("phase", {"name": "unlearn", "request": 3})
        progress.event("eval", {"split": "after", "request": 3, "metrics": {"df_dr_auc": 0.6}})
        progress.event("phase", {"name": "prepare"})
    err = capsys.readouterr().err
    assert "ga: unlearn (request 3 of 8)\n" in err and "ga: eval (after, request 3 of 8) df_dr_auc=60.0" in err
    assert "ga: prepare\n" in err


def test_a_step_line_says_how_many_steps_the_phase_plans(capsys):
    """Plain progress said `unlearn step 12` with no way to tell how far the run was; the loop's step events
    now carry the planned steps (`of`), none under a time budget."""
    from workbench.output import Progress

    with Progress("ga") as progress:
        progress.event("step", {"phase": "unlearn", "step": 12, "of": 25, "losses": {"total": 0.5}})
        progress.PLAIN_INTERVAL = 0.0
        progress.event("step", {"phase": "unlearn", "step": 13, "losses": {"total": 0.5}})
    err = capsys.readouterr().err
    assert "ga: unlearn step 12/25 total=0.5\n" in err and "ga: unlearn step 13 total=0.5\n" in err
