"""`study --attacks`: each cell's attack numbers become per-method columns, mean ± std over the seeds (checked
by hand), an unknown attack is one line and exit 2, and a stored attack with the same parameters is read back."""
import pytest
import typer

from sessions.study import aggregate, grid
from sessions.study import with_attacks
from workbench.study_attacks import attack_columns, parse_attacks, stored_attack


def test_recovery_columns_are_mean_and_std_over_seeds():
    runs = []
    for seed, fraction, points in ((42, 0.2, 10.0), (87, 0.4, 30.0)):
        summary = {"metrics": {"df_dr_auc": 0.7, "test": {"r_mean": 50.0}}}
        found = {"relearn": {"recovery": fraction, "points": points}, "quantize": {"recovery": None, "points": 0.0}}
        runs.append(("neggrad", seed, with_attacks(summary, found)))
        assert summary["metrics"] == {"df_dr_auc": 0.7, "test": {"r_mean": 50.0}}  # the stored document is untouched
    stats = aggregate(runs, order=["neggrad"])["neggrad"]
    # recovery 0.2 and 0.4: mean 0.3, sample std sqrt(((0.1)^2 + (0.1)^2) / 1) = 0.1414; points 10 and 30: 20 +/- 14.14
    assert stats["attack.relearn.recovery"] == pytest.approx({"mean": 0.3, "std": 0.1414214, "n": 2})
    assert stats["attack.relearn.points"] == pytest.approx({"mean": 20.0, "std": 14.142136, "n": 2})
    assert "attack.quantize.recovery" not in stats  # no gap to recover: no number, not a zero
    document = {"spec": {"methods": ["neggrad"]}, "methods": {"neggrad": stats}}
    headers, rows = grid(document, attack_columns(["relearn", "quantize"]), cost=False)
    assert headers == ["method", "n", "relearn recovery", "quantize recovery"]
    assert rows == [["neggrad", "2", "30.0 ± 14.1", "-"]]  # a share of the gap, shown in percent


def test_parse_attacks(capsys):
    assert parse_attacks("quantize, relearn,quantize") == {"quantize": {}, "relearn": {}}
    assert list(parse_attacks("quantize, relearn")) == ["quantize", "relearn"]  # the order given
    assert parse_attacks(None) == {}
    with pytest.raises(typer.Exit) as stop:
        parse_attacks("relearn,melt")
    assert stop.value.exit_code == 2
    assert "--attacks: unknown attack 'melt'; choose from relearn, quantize, rephrase" in capsys.readouterr().err


def test_a_studys_attacks_take_their_settings(capsys):
    """A study's relearn ran only at its defaults (the original's rate, which damages the tiny models), and
    `study --attacks` had no way to say otherwise."""
    assert parse_attacks("relearn:lr=1e-4:units=8:on=neighbours,quantize:bits=8") == {
        "relearn": {"lr": 1e-4, "units": 8, "on": "neighbours"}, "quantize": {"bits": 8}}
    for text, said in (("relearn:rate=1e-4", "relearn takes steps=VALUE, on=VALUE, units=VALUE, lr=VALUE, "
                                             "batch_size=VALUE (e.g. relearn:steps=...), got 'rate=1e-4'"),
                       ("quantize:bits", "got 'bits'"),
                       ("relearn:lr=1e-4,relearn", "--attacks names relearn twice with other settings"),
                       # a bad value was found only after every cell had trained
                       ("relearn:lr=abc", "--attacks relearn:lr=abc: --lr must be a learning rate between 0 and 1"),
                       ("quantize:bits=3", "--attacks quantize:bits=3: --bits 3 is not offered")):
        with pytest.raises(typer.Exit) as stop:
            parse_attacks(text)
        assert stop.value.exit_code == 2 and said in capsys.readouterr().err


class Store:
    def __init__(self, rows):
        self.rows = rows

    def list(self, state=None):
        return list(self.rows)


def test_a_stored_attack_with_the_same_parameters_is_read_back():
    def row(sid, created, bits, state="finished"):
        return {"id": sid, "created": created, "state": state, "parent": "p", "method": "attack:quantize",
                "summary": {"attack": {"kind": "quantize", "params": {"seed": 42, "bits": bits}},
                            "recovery": {"fraction": bits / 100, "points": 1.0}}}

    store = Store([row("a", 1, 4), row("b", 2, 8), row("c", 3, 4, "failed"), {**row("d", 4, 4), "parent": "q"}])
    spec = {"attack": {"kind": "quantize", "params": {"seed": 42, "bits": 4}}}
    assert stored_attack(store, "p", spec)["id"] == "a"
    assert stored_attack(store, "p", {"attack": {"kind": "quantize", "params": {"seed": 7, "bits": 4}}}) is None
