"""The benchmark runs end to end on a tiny graph, reports every figure, and its sweep graphs are well formed."""

from __future__ import annotations

import json
import math

import pytest
import torch

from dhns import bench
from dhns.diffusion.denoiser import ConditionalDenoiser

TINY = ["--dataset", "synthetic:300:40:4", "--model", "distmult", "--dim", "8", "--batch-size", "100",
        "--num-negatives", "4", "--diffusion-steps", "5", "--modalities", "text:6,image:5", "--device", "cpu",
        "--batches", "2", "--warmup", "1", "--threads", "1", "--chain-stride", "1", "--chain-eta", "1"]


def _positive(value: float) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def test_report_has_every_figure(tmp_path, capsys):
    threads = torch.get_num_threads()
    out = tmp_path / "bench.json"
    assert bench.main(TINY + ["--eval", "--json", str(out)]) == 0
    assert torch.get_num_threads() == threads  # --threads is restored afterwards
    report = capsys.readouterr().out
    for label in ("hardware:", "config:", "pretrain", "diffusion", "train (dhns, full reverse chain)", "denoiser (generate alone)",
                  "train, classic", "validation:", "DHNS / classic (full chain): step",
                  "measured fp32 matmul peak", "evaluation:", "peak host RSS", "extrapolated"):
        assert label in report, label
    result = json.loads(out.read_text())
    stages = result["stages"]
    assert set(stages["levels"]) == {"structural", "text", "image"}
    for phase in ("pretrain", "diffusion", "train"):
        row = stages[phase]
        assert row["measured_batches"] == 2 and row["batches_per_epoch"] == 3 and row["extrapolated"]
        for key in ("seconds_per_epoch", "measured_seconds", "triples_per_second", "peak_host_rss_mib"):
            assert _positive(row[key]), (phase, key)
        assert row["seconds_per_epoch"] == pytest.approx(row["measured_seconds"] * 300 / 200)
    assert math.isfinite(stages["pretrain"]["mean_loss"]) and math.isfinite(stages["train"]["mean_loss"])
    generation = stages["generation"]
    assert generation["denoiser_calls_per_chain"] == 5  # T = 5: the weighted levels reach step 0
    assert _positive(generation["flops_per_second"]) and _positive(generation["seconds_per_batch"])
    assert _positive(result["peaks"]["measured_fp32_matmul_flops"])
    evaluation = result["evaluation"]
    assert evaluation["test_triples"] == 30 and _positive(evaluation["seconds"])
    assert result["hardware"]["torch_threads"] == 1 and result["hardware"]["torch"] == torch.__version__


def test_synthetic_graph_has_exactly_n_distinct_valid_triples():
    graph = bench.synthetic_graph(1500, num_entities=60, num_relations=3, seed=1)
    assert graph.train.shape == (1500, 3) and graph.valid.shape == (150, 3) and graph.test.shape == (150, 3)
    everything = graph.all_triples()
    assert torch.unique(everything, dim=0).shape[0] == everything.shape[0]  # distinct and splits disjoint
    assert int(everything[:, [0, 2]].min()) >= 0 and int(everything[:, [0, 2]].max()) < 60
    assert int(everything[:, 1].min()) >= 0 and int(everything[:, 1].max()) < 3
    with pytest.raises(ValueError, match="do not fit"):
        bench.synthetic_graph(100, num_entities=3, num_relations=2)


def test_sweep_has_one_row_per_size(tmp_path, capsys):
    csv_path = tmp_path / "sweep.csv"
    args = TINY + ["--stages", "none", "--sweep", "--sweep-sizes", "1000,2000", "--sweep-entities", "100",
                   "--sweep-batches", "3", "--plot", str(csv_path), "--json", str(tmp_path / "s.json")]
    assert bench.main(args) == 0
    sweep = json.loads((tmp_path / "s.json").read_text())["sweep"]
    assert [row["triples"] for row in sweep["rows"]] == [1000, 2000]
    assert all(_positive(row["seconds_per_1k_triples"]) for row in sweep["rows"])
    assert _positive(sweep["spread"]) and isinstance(sweep["linear"], bool)
    assert len(csv_path.read_text().strip().splitlines()) == 3  # header + one row per size
    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| 1,000") or
             line.startswith("| 2,000")]
    assert len(table) == 2


def test_analytic_denoiser_flops_match_its_linear_layers():
    denoiser = ConditionalDenoiser(12, hidden_multiplier=3)
    per_row, time_mlp = bench.denoiser_flops_per_row(12, 3)
    linear = [m for m in denoiser.modules() if isinstance(m, torch.nn.Linear)]
    assert per_row + time_mlp == sum(2 * m.in_features * m.out_features for m in linear)


@pytest.mark.parametrize("stride", [0, 1, 2])
def test_the_executed_chain_flops_are_what_the_sampler_multiplies(stride):
    """Counted by PyTorch's FLOP counter over every matmul the prepared chain runs (condition term, first and last
    layers, time MLP), for two levels on both sides."""
    from torch.utils.flop_counter import FlopCounterMode

    from dhns.config import ReverseChain
    from dhns.diffusion import GaussianDiffusion
    from dhns.diffusion.generator import HierarchicalGenerator

    torch.manual_seed(0)
    generator = HierarchicalGenerator(("structural", "text"), 12, GaussianDiffusion(10), {"structural": 1.0, "text": 1.0},
                                      hidden_multiplier=3)
    batch, keep_steps, chain = 7, [0, 2, 5], ReverseChain(stride, 1.0)
    condition = torch.randn(2, 2 * batch, 12)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        generator.diffusion.sample_chain(generator.denoiser_stack(), condition, keep_steps, chain=chain)
    assert counter.get_total_flops() == bench.executed_chain_flops(generator, batch, keep_steps, chain)


@pytest.mark.parametrize("spec, expected", [("text:384,image:383", (("text", 384), ("image", 383))),
                                            ("none", ()), ("", ())])
def test_parse_modalities(spec, expected):
    assert bench.parse_modalities(spec) == expected


@pytest.mark.parametrize("args", [["--modalities", "text"], ["--stages", "pretrain,nope"], ["--dim", "0"],
                                  ["--dataset", "synthetic:x"]])
def test_bad_options_are_rejected(args, capsys):
    assert bench.main(args) == 2
    assert "dhns.bench:" in capsys.readouterr().err


def test_hardness_levels_follow_t():
    """params' five levels sit at the reference's fractions of T = 50; the bench moves them to its own T."""
    from configs import LEVELS

    assert [level.step for level in bench.hardness_levels_for(50, LEVELS)] == [0, 5, 6, 12, 25]
    assert [level.step for level in bench.hardness_levels_for(20, LEVELS)] == [0, 2, 2, 5, 10]
    assert [level.weight for level in bench.hardness_levels_for(20, LEVELS)] == [level.weight for level in LEVELS]


def test_sweep_svg_has_a_point_per_size_and_the_linear_reference():
    sweep = {"rows": [{"triples": 10_000, "seconds_per_epoch": 1.0}, {"triples": 100_000, "seconds_per_epoch": 10.5},
                      {"triples": 1_000_000, "seconds_per_epoch": 99.0}]}
    import tempfile
    from pathlib import Path
    import xml.etree.ElementTree as ET

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "sweep.svg"
        bench.write_sweep_svg(path, sweep)
        root = ET.fromstring(path.read_text())
    namespace = "{http://www.w3.org/2000/svg}"
    assert len(root.findall(f"{namespace}circle")) == 3
    lines = root.findall(f"{namespace}polyline")
    assert len(lines) == 2 and "stroke-dasharray" in lines[0].attrib
    assert "1,000,000" in "".join(root.itertext())


def test_the_strided_chain_is_timed_beside_its_classic_base_with_both_ratios(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert bench.main(TINY + ["--stages", "train", "--chain-stride", "0", "--json", str(out)]) == 0
    report = capsys.readouterr().out
    assert "train (dhns, stride_0_eta_1 reverse chain)" in report and "DHNS / classic (stride_0_eta_1 chain)" in report
    stages = json.loads(out.read_text())["stages"]
    # T = 5 and the levels keep steps 2, 1, 0: the strided chain jumps 5 -> 2 -> 1 -> 0, 3 calls instead of 5
    assert stages["generation"]["denoiser_calls_per_chain"] == 3
    classic, dhns, validation = stages["classic"], stages["train"], stages["validation"]
    assert classic["measured_triples"] == dhns["measured_triples"] == 200  # the same batches, back to back
    ratio = stages["dhns_over_classic"]
    assert ratio["step"] == pytest.approx(dhns["seconds_per_batch"] / classic["seconds_per_batch"])
    assert ratio["epoch_with_validation"] == pytest.approx(
        (dhns["seconds_per_epoch"] + validation["seconds"]) / (classic["seconds_per_epoch"] + validation["seconds"]))
    assert validation["valid_triples"] == 30 and _positive(validation["seconds"])
    cache = stages["cache"]  # NSCaching's step on the same batches, beside both
    assert (classic["sampler"], dhns["sampler"], cache["sampler"]) == ("self_adversarial", "dhns", "nscaching")
    assert cache["measured_triples"] == 200 and _positive(cache["seconds_per_batch"])
    assert stages["cache_over_classic"]["step"] == pytest.approx(cache["seconds_per_batch"] / classic["seconds_per_batch"])
    assert "train, nscaching" in report and "NSCaching / classic: step" in report
    # the least ratios this machine allows: the classic step plus generation at its matmul floor
    generation, floor = stages["generation"], stages["dhns_over_classic_floor"]
    assert generation["floor_seconds_per_batch"] == pytest.approx(
        generation["executed_flops_per_full_batch"] / generation["matmul_peak_flops"])
    assert floor["step"] == pytest.approx(1 + generation["floor_seconds_per_batch"] / classic["seconds_per_batch"])
    batches = json.loads(out.read_text())["graph"]["train"] / 100  # TINY's batches of 100, the last one partial
    assert floor["epoch_with_validation"] == pytest.approx(
        (classic["seconds_per_epoch"] + batches * generation["floor_seconds_per_batch"] + validation["seconds"])
        / (classic["seconds_per_epoch"] + validation["seconds"]))
    assert "DHNS / classic with generation at its floor" in report
    joint = stages["joint"]  # the paper's protocol: a generator step on each batch before the KGC step, same batches
    assert joint["sampler"] == "dhns" and joint["measured_triples"] == 200
    assert stages["joint_over_classic"]["step"] == pytest.approx(joint["seconds_per_batch"] / classic["seconds_per_batch"])
    assert "joint protocol: a generator step on each batch first" in report and "joint DHNS / classic: step" in report


def test_sweep_over_entity_counts_reports_the_step_against_the_table(tmp_path, capsys):
    args = TINY + ["--stages", "none", "--sweep", "--sweep-sizes", "600,1200", "--sweep-entities", "100,400",
                   "--sweep-batches", "2", "--json", str(tmp_path / "s.json")]
    assert bench.main(args) == 0
    report = capsys.readouterr().out
    assert "100, 400 entities" in report and "seconds per step against the entity table (600 triples)" in report
    sweep = json.loads((tmp_path / "s.json").read_text())["sweep"]
    assert [(row["entities"], row["triples"]) for row in sweep["rows"]] == [(100, 600), (100, 1200), (400, 600),
                                                                            (400, 1200)]
    steps = {row["entities"]: row["seconds_per_step"] for row in sweep["rows"] if row["triples"] == 600}
    scaling = sweep["entity_scaling"]["rows"]
    assert [row["entities"] for row in scaling] == [100, 400] and scaling[0]["over_smallest"] == 1.0
    assert scaling[1]["over_smallest"] == pytest.approx(steps[400] / steps[100])
    assert all(_positive(row["peak_host_rss_mib"]) for row in sweep["rows"])
    # each size beside its memory floor: the batch's traffic plus the table rows its optimizer moves
    assert "memory floor:" in report and "x floor" in report
    for row in sweep["rows"]:
        assert 0 < row["rows_touched"] <= min(row["entities"], 100 * (4 + 2))  # batch 100, 4 negatives
        assert row["floor_bytes"] == row["batch_floor_bytes"] + row["table_floor_bytes"]
        assert row["times_floor"] == pytest.approx(row["seconds_per_step"] / row["floor_seconds"])
        assert row["floor_seconds"] == pytest.approx(row["floor_bytes"] / sweep["bandwidth"]["bytes_per_second"])


def test_the_table_update_floor_by_hand():
    """fp32, width 8. Dense Adam moves every row: gradient read, row and two moments read and written, 7 values
    of 1,000 rows; lazy Adam the same for the 50 touched rows; row-wise Adagrad reads the gradient and reads and
    writes the row (3 values) plus one accumulator read and written per touched row."""
    from dhns.bench.floors import optimizer_floor_bytes

    assert optimizer_floor_bytes("adam", 50, 1000, 8) == 4 * 7 * 1000 * 8 == 224_000
    assert optimizer_floor_bytes("lazy_adam", 50, 1000, 8) == 4 * 7 * 50 * 8 == 11_200
    assert optimizer_floor_bytes("row_adagrad", 50, 1000, 8) == 4 * (3 * 50 * 8 + 2 * 50) == 5_200


def test_with_no_flags_the_bench_times_the_chain_and_precision_dvc_repro_runs():
    """The bench reads params.yaml: only its workload (scorer, width, batch, negatives, T) differs from the
    pipeline's settings, and a flag changes precision or chain only when given."""
    import dataclasses
    from pathlib import Path

    from dhns.bench.settings import bench_params, diffusion_settings, dhns_settings, pretrain_settings
    from dhns.config import load_params

    repo_params = str(Path(__file__).resolve().parents[1] / "params.yaml")
    config = bench.BenchConfig(params=repo_params)
    pipeline = load_params(repo_params, overrides={"model.name": config.model})
    params = bench_params(config)
    dhns, pretrain = dhns_settings(config, params), pretrain_settings(config, params)
    assert (dhns.chain, dhns.precision) == (pipeline.train.chain, pipeline.train.precision)
    assert pretrain.precision == pipeline.pretrain.precision
    assert diffusion_settings(config, params).precision == pipeline.diffusion.precision
    workload = {"num_negatives", "batch_size", "hardness_levels", "generated_negatives"}
    for field in dataclasses.fields(dhns):
        if field.name not in workload:
            assert getattr(dhns, field.name) == getattr(pipeline.train, field.name), field.name
    assert params.model.margin == pipeline.model.margin  # the scorer's own gamma, not a code default
    flagged = dataclasses.replace(config, precision="fp32", chain_stride=1)
    flagged_dhns = dhns_settings(flagged, params)
    assert (flagged_dhns.chain_stride, flagged_dhns.precision) == (1, "fp32")
    assert pretrain_settings(flagged, params).precision == "fp32"
