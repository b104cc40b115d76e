"""``evcf study`` end to end on a tiny synthetic dataset: rows of every kind, the report, the
reproduce commands, and resuming (finished rows are not redone, an interrupted run continues)."""

import json
import re
import shlex

import numpy as np
import pytest
from _train_data import clustered_split, one_torch_thread  # noqa: F401 (autouse)

pytest.importorskip("optuna")

from evcf_fast.cli.main import main  # noqa: E402
from evcf_fast.models import ModelConfig  # noqa: E402
from evcf_fast.train import TrainConfig, fit  # noqa: E402
from evcf_fast.train.study import StudySpec  # noqa: E402

N_ITEMS = 120
TINY = ('hidden_size = 16, latent_size = 4, batch_size = 64, warmup = 0, patience = "none", '
        'eval_batch_size = 1000')

STUDY = f'''
data = "split"
out = "study"

[set]
device = "cpu"

[[rows]]
name = "popularity"
model = "popularity"

[[rows]]
name = "ItemKNN"
model = "itemknn"
set = {{ neighbours = 20 }}

[[rows]]
name = "EASE (lambda tuned)"
sweep = "ease.toml"

[[rows]]
name = "Mult-VAE"
model = "multvae"
set = {{ epochs = 4, {TINY} }}
'''

EASE = '''
sampler = "grid"
n_trials = 3
pruner = "none"
[fixed]
model = "ease"
[params.ease_lambda]
choices = [1.0, 10.0, 100.0]
'''


@pytest.fixture
def study_dir(tmp_path):
    clustered_split(n_items=N_ITEMS).save(tmp_path / "split")
    (tmp_path / "study.toml").write_text(STUDY)
    (tmp_path / "ease.toml").write_text(EASE)
    return tmp_path


def test_study_end_to_end(study_dir, capsys):
    # an interrupted Mult-VAE run: 2 of its 4 epochs done, no test.json
    spec = StudySpec.load(study_dir / "study.toml")
    mv = study_dir / "study" / "runs" / "mult-vae"
    cfg = ModelConfig(model="multvae", n_items=N_ITEMS, hidden_size=16, latent_size=4)
    fit(str(study_dir / "split"), model_config=cfg,
        train_config=TrainConfig(epochs=2, batch_size=64, warmup=0, patience=None,
                                 eval_batch_size=1000, device="cpu"),
        out=mv, progress=False, evaluate_test=False)
    first = [json.loads(x) for x in (mv / "log.jsonl").read_text().splitlines()]

    assert main(["study", str(study_dir / "study.toml"), "--quiet"]) == 0
    report = study_dir / "study" / "report"
    text = (report / "results.md").read_text()
    results = json.loads((report / "results.json").read_text())
    assert [r["name"] for r in results] == [r.name for r in spec.rows]
    for r in results:
        assert f"| {r['name']} | {r['test']['ndcg@100'][0]:.4f} +- " in text
        for m in ("ndcg@100", "ndcg@20", "recall@20", "recall@50"):
            assert 0 < r["test"][m][0] <= 1 and r["test"][m][1] > 0
    # paired randomisation tests against the best row and against EASE, from evcf_fast.compare
    best = max(results, key=lambda r: r["test"]["ndcg@100"][0])["name"]
    for r in results:
        if r["name"] != best:
            cell = r"\| [+-]\d\.\d{4} \(p [0-9.e-]+\) \|"
            assert re.search(rf"\| {re.escape(r['name'])} \|.*{cell}", text), r["name"]
    # the interrupted run continued: epochs 1-2 as before, then 3-4
    log = [json.loads(x) for x in (mv / "log.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in log] == [1, 2, 3, 4] and log[:2] == first
    # the EASE row is the sweep's best trial on validation
    ease = results[2]
    assert ease["run"].startswith(str(study_dir / "study" / "sweeps"))
    trials = [json.loads((p / "log.jsonl").read_text()) for p in
              (study_dir / "study" / "sweeps" / "ease-lambda-tuned" / "trials").iterdir()]
    assert len(trials) == 3
    assert ease["validation"]["ndcg@100"] == max(t["val_ndcg@100"] for t in trials)
    # per-user values agree with the table's means
    per_user = np.load(report / "per_user.npz")
    for r in results:
        assert np.nanmean(per_user[f"{r['name']}|ndcg@100"]) == pytest.approx(
            r["test"]["ndcg@100"][0], rel=1e-5)
    assert (report / "curves.png").stat().st_size > 0

    # the reproduce command of a training row trains the same model again
    words = shlex.split(results[3]["command"])
    assert words[:2] == ["evcf", "train"]
    words[words.index("--out") + 1] = str(study_dir / "again")
    assert main(words[1:] + ["--quiet"]) == 0
    again = json.loads((study_dir / "again" / "test.json").read_text())
    assert again["metrics"]["ndcg@100"]["mean"] == pytest.approx(
        results[3]["test"]["ndcg@100"][0], rel=1e-6)

    # a second run redoes nothing; --report alone rebuilds the same table
    stamps = {p: p.stat().st_mtime_ns for p in (study_dir / "study").rglob("test.json")}
    assert main(["study", str(study_dir / "study.toml"), "--quiet"]) == 0
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    capsys.readouterr()
    assert main(["study", str(study_dir / "study.toml"), "--report", "--quiet"]) == 0
    assert "| Mult-VAE |" in capsys.readouterr().out

    # a trial killed during its first epoch (an empty log.jsonl) counts 0 s in the sweep's time
    # and does not stop the report
    killed = study_dir / "study" / "sweeps" / "ease-lambda-tuned" / "trials" / "trial-0099"
    killed.mkdir()
    (killed / "log.jsonl").write_text("")
    assert main(["study", str(study_dir / "study.toml"), "--report", "--quiet"]) == 0
    again = json.loads((report / "results.json").read_text())
    assert again[2]["sweep_seconds"] == pytest.approx(results[2]["sweep_seconds"])


@pytest.mark.parametrize("text, match", [
    ('out = "x"\n[[rows]]\nname = "a"\nmodel = "ease"\n', "`data`"),
    ('data = "d"\n', "no \\[\\[rows\\]\\]"),
    ('data = "d"\n[[rows]]\nname = "a"\n', "either `sweep` or `model`/`preset`"),
    ('data = "d"\n[[rows]]\nname = "a"\nmodel = "ease"\n[[rows]]\nname = "A"\nmodel = "ease"\n',
     "must differ"),
    ('data = "d"\n[[rows]]\nname = "a"\nmodel = "ease"\nset = { lamda = 3 }\n',
     "unknown override key 'lamda'"),
    ('data = "d"\n[[rows]]\nname = "a"\nsweep = "s.toml"\nset = { lr = 1 }\n', "sweep's"),
])
def test_bad_study_files(tmp_path, text, match):
    (tmp_path / "s.toml").write_text(text)
    with pytest.raises(ValueError, match=match):
        StudySpec.load(tmp_path / "s.toml")
    assert main(["study", str(tmp_path / "s.toml")]) == 2
