"""``nnkit compare`` and ``nnkit.compare``: runs side by side, every cell from a stored evaluation.

The table's numbers must equal what the individual commands printed: ``nnkit attack pgd|apgd|one-pixel|patch``,
``nnkit corrupt`` and ``nnkit confounding`` at tiny budgets, each storing its evaluation with the run.
"""

from __future__ import annotations

import csv
import io
import json
import warnings

import pytest

from nnkit.cli import main
from nnkit.compare import (
    COMPUTE_DEFAULTS,
    cell_command,
    compare_runs,
    compute_cell,
    eps_label,
    missing_cells,
    parse_eps,
)
from nnkit.errors import NnkitError
from nnkit.runs import RunStore
from nnkit.runs.evaluations import command_line, list_evaluations, record_evaluation
from nnkit.runs.store import BrokenRunWarning

TINY_MODEL = {"widths": [8, 16], "hidden": 16}


def _train(data: str, name: str):
    from nnkit.training import TrainConfig, train

    done = train(TrainConfig(data=data, data_opts={"n_train": 200, "n_test": 60}, model="cnn", model_opts=TINY_MODEL,
                             epochs=1, max_steps=3, seed=0, device="cpu", name=name))
    return RunStore().get(done.run_id)


@pytest.fixture(scope="module")
def three_runs():
    """Three tiny classifiers (seconds): two on shapes, one on shapes-confounded (its data has confounder masks)."""
    return [_train("shapes", "cmp-a"), _train("shapes", "cmp-b"), _train("shapes-confounded", "cmp-conf")]


def _cli(capsys, argv: list[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def _robust(run, attack: str, eps: list[float], accs: list[float], n: int = 8):
    params = {"attack": attack, "norm": "linf", "eps": eps, "steps": 10, "n": n, "split": "test", "seed": 0,
              "target": None}
    result = {"robust_accuracy": {eps_label(e): a for e, a in zip(eps, accs)}, "eps": eps, "clean_accuracy": 0.5,
              "n": n, "min_eps_median": 0.01}
    argv = ["attack", attack, run.run_id, "--eps", ",".join(eps_label(e) for e in eps), "--n", str(n)]
    return record_evaluation(run, "robust", params, result, command_line(argv))


# -- the table ----------------------------------------------------------------------------------------------
def _json(capsys, argv: list[str]) -> dict:
    code, out, err = _cli(capsys, argv)
    assert code == 0, err
    return json.loads(out.splitlines()[-1])


def _corrupt(capsys, run, reference) -> dict:
    return _json(capsys, ["corrupt", run.run_id, "--n", "8", "--seed", "0", "--corruptions", "gaussian_noise,contrast",
                          "--severities", "1,5", "--reference", reference.run_id, "--json"])


def test_table_equals_what_the_individual_commands_print(three_runs, capsys):
    a, b, c = three_runs
    pgd_a = _json(capsys, ["attack", "pgd", a.run_id, "--eps", "4/255,8/255", "--n", "8", "--seed", "0", "--json"])
    apgd_a = _json(capsys, ["attack", "apgd", a.run_id, "--eps", "8/255", "--steps", "5", "--n", "8", "--seed", "0",
                            "--json"])
    pgd_b = _json(capsys, ["attack", "pgd", b.run_id, "--eps", "8/255", "--n", "8", "--seed", "0", "--json"])
    pixel_b = _json(capsys, ["attack", "one-pixel", b.run_id, "--n", "8", "--popsize", "8", "--generations", "2",
                             "--seed", "0", "--json"])
    patch_b = _json(capsys, ["attack", "patch", b.run_id, "--target", "0", "--n", "8", "--train-n", "16", "--steps",
                             "2", "--seed", "0", "--json"])
    corr_c = _corrupt(capsys, c, a)

    table = compare_runs([a.run_id, "cmp-b", c.run_id], eps="8/255", reference=a.run_id)
    cells = {r.run_id: r.cells for r in table.rows}
    assert [r.run_id for r in table.rows] == [a.run_id, b.run_id, c.run_id]
    # APGD is preferred over PGD at the same ε; at 4/255 only PGD measured it
    assert cells[a.run_id]["robust_accuracy"].value == apgd_a["robust_accuracy"]["8/255"]
    assert "APGD" in cells[a.run_id]["robust_accuracy"].source
    assert cells[a.run_id]["robust_accuracy"].command.startswith(f"nnkit attack apgd {a.run_id} --eps 8/255")
    assert compare_runs([a.run_id], eps="4/255").rows[0].cells["robust_accuracy"].value == \
        pgd_a["robust_accuracy"]["4/255"]
    assert cells[b.run_id]["robust_accuracy"].value == pgd_b["robust_accuracy"]["8/255"]
    assert "PGD" in cells[b.run_id]["robust_accuracy"].source
    assert cells[b.run_id]["one_pixel_success"].value == pixel_b["success_rate"]
    assert cells[b.run_id]["patch_success"].value == patch_b["success_rate"]
    assert cells[c.run_id]["corruption_accuracy"].value == pytest.approx(corr_c["mean_accuracy"])
    assert cells[c.run_id]["mce"].value == pytest.approx(corr_c["mce"]) and corr_c["mce"] is not None
    assert cells[c.run_id]["robust_accuracy"].missing
    for run in three_runs:
        assert cells[run.run_id]["clean_accuracy"].value == pytest.approx(run.meta["test_accuracy"])
        assert cells[run.run_id]["parameters"].value == run.meta["parameters"]

    code, out, err = _cli(capsys, ["compare", a.run_id, b.run_id, c.run_id, "--eps", "8/255", "--reference",
                                   a.run_id])
    assert code == 0, err
    lines = out.splitlines()
    assert "robust acc. ε=8/255" in lines[0] and "mCE" in lines[0]
    row_a = next(line for line in lines if line.startswith("cmp-a"))
    assert f"{apgd_a['robust_accuracy']['8/255']:.1%}" in row_a and f"{a.meta['test_accuracy']:.1%}" in row_a
    row_b = next(line for line in lines if line.startswith("cmp-b"))
    assert f"{pixel_b['success_rate']:.1%}" in row_b and f"{patch_b['success_rate']:.1%}" in row_b
    row_c = next(line for line in lines if line.startswith("cmp-conf"))
    assert f"{corr_c['mean_accuracy']:.1%}" in row_c and f"{corr_c['mce']:.1%}" in row_c and "—" in row_c
    assert f"nnkit attack apgd {c.run_id} --eps 8/255" in out  # the missing cell's command, below the table

    obj = _json(capsys, ["compare", a.run_id, b.run_id, c.run_id, "--reference", a.run_id, "--json"])
    assert obj["eps_text"] == "8/255" and obj["reference"] == a.run_id
    got = {r["run_id"]: r["cells"] for r in obj["rows"]}
    assert got[a.run_id]["robust_accuracy"]["value"] == apgd_a["robust_accuracy"]["8/255"]
    assert got[c.run_id]["mce"]["value"] == pytest.approx(corr_c["mce"]) and got[c.run_id]["robust_accuracy"]["missing"]
    assert any(m["run_id"] == c.run_id and m["column"] == "robust_accuracy" for m in obj["missing"])

    code, out, _ = _cli(capsys, ["compare", a.run_id, b.run_id, c.run_id, "--csv"])
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and [r["run_id"] for r in rows] == [a.run_id, b.run_id, c.run_id]
    assert float(rows[1]["robust_accuracy"]) == pgd_b["robust_accuracy"]["8/255"]
    assert float(rows[1]["one_pixel_success"]) == pixel_b["success_rate"]
    assert rows[2]["robust_accuracy"] == "" and rows[2]["robust_accuracy source"].startswith("missing: nnkit attack")


def test_confounding_command_records_its_verdict_for_compare(three_runs, capsys):
    """The real ``nnkit confounding`` stores an evaluation; the table shows its verdict and command."""
    conf = three_runs[2]
    code, out, err = _cli(capsys, ["confounding", conf.run_id, "--n", "8", "--methods", "saliency", "--json"])
    assert code == 0, err
    printed = json.loads(out.splitlines()[-1])
    stored = list_evaluations(conf, "confounding")
    assert len(stored) == 1 and stored[0].params["n"] == 8 and stored[0].params["methods"] == ["saliency"]
    assert stored[0].result["verdict"] == printed["verdict"]
    assert stored[0].command == f"nnkit confounding {conf.run_id} --n 8 --seed 0 --methods saliency"
    cell = compare_runs([conf.run_id]).rows[0].cells["confounding"]
    assert cell.value == {"relies_on_confounder": "relies on confounder", "no_evidence": "no evidence"}[
        printed["verdict"]]
    assert cell.command == stored[0].command and cell.created == stored[0].created
    # The stored command prints the same verdict again.
    code, out, _ = _cli(capsys, [*stored[0].command.split()[1:], "--json"])
    assert json.loads(out.splitlines()[-1])["verdict"] == printed["verdict"]


def test_missing_cells_name_the_command_that_compute_cell_runs(three_runs, capsys):
    a, _, conf = three_runs
    fresh = _train("shapes", "cmp-fresh")
    table = compare_runs([fresh.run_id], eps=8 / 255)
    todo = missing_cells(table)
    assert [c.column for c in todo] == ["robust_accuracy", "one_pixel_success", "patch_success", "corruption_accuracy"]
    n = COMPUTE_DEFAULTS["robust"]["n"]
    assert todo[0].command == (f"nnkit attack apgd {fresh.run_id} --eps 8/255 --norm linf --steps 100 --n {n} "
                               "--seed 0 --json")
    # shapes has no confounder masks: listed with a box to give, not computable alone
    blocked = [c for c in missing_cells(table, computable_only=False) if not c.computable]
    assert [c.column for c in blocked] == ["confounding"] and "--mask-box" in blocked[0].command
    with pytest.raises(NnkitError, match="no confounder masks"):
        compute_cell(fresh, "confounding")
    with pytest.raises(NnkitError, match="meta.json"):
        compute_cell(fresh, "parameters")
    code, out, _ = _cli(capsys, ["compare", fresh.run_id])
    assert code == 0 and "missing cells" in out and todo[0].command in out and todo[3].command in out
    assert cell_command(conf, "confounding", n=8)[0] == f"nnkit confounding {conf.run_id} --n 8 --seed 0"


def test_compute_cell_fills_one(three_runs):
    conf = _train("shapes-confounded", "cmp-compute")
    assert compare_runs([conf.run_id]).rows[0].cells["confounding"].missing
    seen = []
    ev = compute_cell(conf.run_id, "confounding", n=8, on_progress=lambda d, t: seen.append((d, t)))
    cell = compare_runs([conf.run_id]).rows[0].cells["confounding"]
    assert not cell.missing and cell.command == ev.command == cell_command(conf, "confounding", n=8)[0]
    assert seen and seen[-1][0] == seen[-1][1]
    assert conf.run_id not in {c.run_id for c in missing_cells(compare_runs([conf.run_id]))
                               if c.column == "confounding"}
    # APGD at ε through robust_on_run: the recorded command is the one the missing cell showed
    shown = cell_command(conf, "robust_accuracy", eps=4 / 255, n=4)[0]
    ev = compute_cell(conf, "robust_accuracy", eps="4/255", n=4)
    cell = compare_runs([conf.run_id], eps=4 / 255).rows[0].cells["robust_accuracy"]
    assert ev.command == shown == cell.command and cell.value == ev.result["robust_accuracy"]["4/255"]


def test_broken_evaluation_file_is_skipped_with_a_warning(three_runs, capsys):
    run = _train("shapes", "cmp-broken")
    _robust(run, "pgd", [8 / 255], [0.5])
    (run.path / "evals" / "robust-000000000000.json").write_text("{not json")
    _robust(run, "apgd", [8 / 255], [1.5])  # a hand-edited file: not a fraction, so not shown (not as 150%)
    with pytest.warns(BrokenRunWarning, match="unreadable"):
        table = compare_runs([run.run_id])
    assert table.rows[0].cells["robust_accuracy"].value == 0.5 and table.warnings
    code, out, err = _cli(capsys, ["compare", run.run_id])
    assert code == 0 and "50.0%" in out and err.count("warning:") == 1 and "robust-000000000000.json" in err


def test_one_line_errors(three_runs, capsys):
    a = three_runs[0]
    for argv, words in ((["compare", "no-such-run"], "no run"), (["compare", a.run_id, "--eps", "3"], "(0, 1]"),
                        (["compare", a.run_id, "--eps", "x/2"], "ε"), (["compare", a.run_id, "--json", "--csv"], "")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                code, out, err = _cli(capsys, argv)
            except SystemExit as exc:  # argparse's own errors
                code, err = exc.code, capsys.readouterr().err
        assert code == 2, argv
        assert len(err.strip().splitlines()) == 1 and err.startswith("error:") and words in err, err


def test_eps_and_store_helpers(three_runs):
    assert parse_eps("8/255") == pytest.approx(8 / 255) and eps_label(8 / 255) == "8/255" and eps_label(0.1) == "0.1"
    with pytest.raises(NnkitError):
        parse_eps("0")
    assert compare_runs([]).rows == []
    run = three_runs[1]
    assert compare_runs([run.run_id, "cmp-b"]).rows[0].run_id == run.run_id  # a repeat is shown once


@pytest.mark.slow
def test_compare_compute_fills_every_computable_cell(capsys):
    """``nnkit compare --compute`` runs the listed commands (tiny n) and the table then shows their numbers."""
    run = _train("shapes", "cmp-compute-all")
    ref = _train("shapes", "cmp-compute-ref")
    code, _, err = _cli(capsys, ["compare", run.run_id, "--reference", ref.run_id, "--compute", "--n", "2"])
    assert code == 0, err
    assert f"[1/4] nnkit attack apgd {run.run_id} --eps 8/255 --norm linf --steps 100 --n 2 --seed 0" in err
    table = compare_runs([run.run_id], reference=ref.run_id)
    assert missing_cells(table) == []
    cells = table.rows[0].cells
    for key, kind in (("robust_accuracy", "robust"), ("one_pixel_success", "one-pixel"), ("patch_success", "patch"),
                      ("corruption_accuracy", "corruptions"), ("mce", "corruptions")):
        stored = list_evaluations(run, kind)
        assert len(stored) == 1 and cells[key].command == stored[0].command and " --n 2 " in stored[0].command
    assert cells["mce"].value == list_evaluations(run, "corruptions")[0].result["mce"]
