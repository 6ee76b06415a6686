"""The command line a newcomer meets: one-line errors (exit 2, no traceback) checked before any model
loads, help with defaults and examples, the README's commands, data files, progress in logs."""
from __future__ import annotations

import io
import json
import re
import shlex
from pathlib import Path

import pytest

from interp.cli import build_parser, main

pytestmark = pytest.mark.usefixtures("one_thread")
README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    """A tiny teacher/student pair (HANS vocabulary) and input files, good and bad, in one folder."""
    from interp.data.hans import write_hans
    from interp.data.hans_gen import generate_hans
    from interp.organisms import save_tiny_pair, tiny_pairs

    root = tmp_path_factory.mktemp("cli")
    teacher, student = save_tiny_pair(str(root / "models"))
    write_hans(generate_hans(2, seed=0), root / "hans.txt")
    (root / "unlabelled.jsonl").write_text("".join(json.dumps(e) + "\n" for e in tiny_pairs(8)))
    (root / "pairs.jsonl").write_text("".join(json.dumps({"clean": a, "corrupt": a}) + "\n" for a in tiny_pairs(4)))
    (root / "bad_pairs.jsonl").write_text(json.dumps({"clean": tiny_pairs(1)[0]}) + "\n")
    (root / "broken.jsonl").write_text('{"premise": "a", "hypothesis": "b"}\n{not json\n')
    (root / "data.csv").write_text("premise,hypothesis\n")
    (root / "gpt2").mkdir()
    (root / "gpt2" / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_layer": 2}))
    (root / "a_file").write_text("x")
    return {"T": teacher, "S": student, **{k: str(root / v) for k, v in {
        "hans": "hans.txt", "unlabelled": "unlabelled.jsonl", "pairs": "pairs.jsonl", "bad_pairs": "bad_pairs.jsonl",
        "broken": "broken.jsonl", "csv": "data.csv", "gpt2": "gpt2", "file": "a_file", "missing": "nope/missing.txt",
        "out": "out"}.items()}}


# (argv with {placeholders}, a regex the one-line message must match); every case is wrong input
WRONG = [
    ("capture --model {missing} --data {hans} --out {out}", r"--model .*no such folder"),
    ("capture --model {gpt2} --data {hans} --out {out}", r"model type 'gpt2' is not supported"),
    ("capture --model {T} --data {missing} --out {out}", r"--data .*no such file.*interp data hans"),
    ("capture --model {T} --data {csv} --out {out}", r"Unknown data format"),
    ("capture --model {T} --data {broken} --out {out}", r"line 2: not valid JSON"),
    ("capture --model {T} --data {hans} --pool median --out {out}", r"invalid choice: 'median'"),
    ("capture --model {T} --data {hans} --batch-size 0 --out {out}", r"--batch-size: must be at least 1"),
    ("capture --model {T} --data {hans} --out {file}", r"--out .*is a file"),
    ("cka --teacher {T} --student {S} --data {unlabelled} --conditions hans", r"--conditions hans needs a label"),
    ("cka --teacher {T} --student {S} --data {hans} --layer-map 0,x", r"--layer-map .*expected"),
    ("cka --teacher {T} --student {S} --data {hans} --layer-map 0,7", r"teacher layer\(s\) \[7\] do not exist"),
    ("cka --teacher {T} --student {missing} --data {hans}", r"--student .*no such folder"),
    ("compare --teacher {T} --student {S} --layer-map 0,2,4,5 --out {out}", r"student layer\(s\) \[3\] do not exist"),
    ("compare --teacher {T} --student {S} --layer-map 0:0,1 --out {out}", r"--layer-map .*expected"),
    ("compare --teacher {T} --student {S} --data {pairs} --out {out}", r"needs a HANS tab-separated file"),
    ("compare --teacher {T} --student {S} --data {missing} --out {out}", r"no such file"),
    ("compare --teacher {T} --student {S} --reference {missing} --out {out}", r"--reference .*no such folder"),
    ("patch --model {T} --pairs hans:bogus --out {out}", r"unknown HANS pair kind 'bogus'"),
    ("patch --model {T} --pairs {missing} --out {out}", r"--pairs .*no such file"),
    ("patch --model {T} --pairs {bad_pairs} --out {out}", r"line 1 needs \"clean\" and \"corrupt\""),
    ("patch --model {T} --metric margin --out {out}", r"invalid choice: 'margin'"),
    ("patch --model {file} --out {out}", r"--model .*is a file"),
    ("circuit --model {T} --faithfulness 2 --out {out}", r"--faithfulness: must be in \(0, 1\]"),
    ("circuit --model {T} --level edge --method ig --steps 0 --out {out}", r"--steps: must be at least 1"),
    ("circuit --model {T} --pairs {bad_pairs} --out {out}", r"needs \"clean\" and \"corrupt\""),
    ("data hans --out {out}.json", r"use a .txt or .tsv file name"),
    ("data nli --bias 2 --out {out}.jsonl", r"--bias: must be in \[0, 1\]"),
    ("data nli --n 0 --out {out}.jsonl", r"--n: must be at least 1"),
    ("demo --out {file}", r"--out .*is a file"),
    ("bogus", r"invalid choice: 'bogus'"),
]


def _argv(template: str, files: dict[str, str]) -> list[str]:
    return shlex.split(template.format(**files))


def _one_line_error(capsys, argv: list[str], pattern: str) -> str:
    rc = main(argv)
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.strip()]
    assert rc == 2, (argv, rc, err)
    assert "Traceback" not in err, err
    assert len(lines) == 1 and re.match(r"interp( [a-z]+)*: error: ", lines[0]), err
    assert re.search(pattern, lines[0]), lines[0]
    return lines[0]


@pytest.mark.parametrize("template,pattern", WRONG, ids=[w[0].split(" --")[0] + f"-{i}" for i, w in enumerate(WRONG)])
def test_wrong_input_is_one_line_and_exit_2(files, capsys, template, pattern):
    _one_line_error(capsys, _argv(template, files), pattern)


def test_debug_shows_the_traceback(files):
    from interp.errors import UserError

    with pytest.raises(UserError, match="no such file"):
        main(["--debug", *_argv("capture --model {T} --data {missing} --out {out}", files)])


def test_inputs_are_checked_before_any_model_loads(files, capsys, monkeypatch):
    """Every wrong-input case with real model folders fails on the input, not after loading a model."""
    import interp.loading
    import interp.subject

    def refuse(*a, **k):
        raise AssertionError("a model was loaded before the inputs were checked")

    monkeypatch.setattr(interp.subject, "load_subject", refuse)
    monkeypatch.setattr(interp.subject, "load_folder", refuse)
    monkeypatch.setattr(interp.loading, "load_folder", refuse)
    for template, pattern in WRONG:
        if "{T}" in template:
            _one_line_error(capsys, _argv(template, files), pattern)


def test_every_subcommand_shows_defaults_and_an_example():
    parser = build_parser()
    assert parser.description.rstrip().endswith(".")
    sub = next(a for a in parser._actions if a.dest == "command")
    parsers = dict(sub.choices)
    data = next(a for a in parsers.pop("data")._actions if a.dest == "kind")
    parsers.update({f"data {k}": v for k, v in data.choices.items()})
    for name, p in parsers.items():
        text = p.format_help()
        assert "default:" in text and "example" in text, name
    patch_help = sub.choices["patch"].format_help()
    circuit_help = sub.choices["circuit"].format_help()
    for text in (patch_help, circuit_help):
        assert "denoise: run the corrupted input" in " ".join(text.split())
    assert "(default: denoise)" in patch_help and "(default: noise)" in circuit_help


def test_one_layer_map_syntax_everywhere():
    from interp.commands._options import parse_layer_map
    from interp.errors import UserError

    assert parse_layer_map("0,2,4") == parse_layer_map("0:0,1:2,2:4") == {0: 0, 1: 2, 2: 4}
    assert parse_layer_map("1:3") == {1: 3}
    for bad in ("", "0,a", "0:1:2", "0:0,1", "0:1,0:2", "-1"):
        with pytest.raises(UserError):
            parse_layer_map(bad)
    parser = build_parser()
    for cmd in ("cka", "compare"):
        args = parser.parse_args([cmd, "--teacher", "t", "--student", "s", "--data", "d", "--out", "o",
                                  "--layer-map", "0,2,4"])
        assert args.layer_map == {0: 0, 1: 2, 2: 4}


def test_data_commands_write_what_the_readers_read(tmp_path, capsys):
    from interp.data.hans import HANS_COLUMNS, load_hans

    assert main(["data", "hans", "--n-per-subcase", "2", "--seed", "3", "--out", str(tmp_path / "h.txt")]) == 0
    assert main(["data", "hans", "--n-per-subcase", "2", "--seed", "3", "--out", str(tmp_path / "h2.tsv")]) == 0
    assert (tmp_path / "h.txt").read_text() == (tmp_path / "h2.tsv").read_text()
    assert (tmp_path / "h.txt").read_text().split("\n")[0].split("\t")[:11] == list(HANS_COLUMNS)
    assert len(load_hans(tmp_path / "h.txt")) == 60
    assert main(["data", "nli", "--n", "30", "--bias", "0.5", "--out", str(tmp_path / "n.jsonl")]) == 0
    rows = [json.loads(x) for x in (tmp_path / "n.jsonl").read_text().splitlines()]
    assert len(rows) == 30 and {r["label"] for r in rows} == {"entailment", "neutral", "contradiction"}


def test_progress_prints_lines_when_stderr_is_not_a_terminal():
    from interp.progress import LogBar, bar

    assert isinstance(bar(total=3), LogBar)  # pytest captures stderr: not a terminal
    out = io.StringIO()
    b = LogBar(total=4, desc="capture m", unit="ex", every=0.0, file=out)
    for _ in range(2):
        b.update(1)
        b.set_postfix(loss="0.412")
    b.close()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("capture m: 1/4 ex (25%)") and "ex/s" in lines[0] and "left" in lines[0]
    assert lines[-1].startswith("capture m: 2/4 ex (50%)") and lines[-1].endswith("loss=0.412")
    quiet = io.StringIO()
    b = LogBar(total=4, every=1e9, file=quiet)
    b.update(4)
    assert quiet.getvalue() == ""  # at most one line per `every` seconds ...
    b.close()
    assert quiet.getvalue().count("\n") == 1  # ... and one at the end


def test_no_gap_is_never_printed_as_nan():
    from interp.comparison_run import _share

    row = {"restored": float("nan"), "ci95": [float("nan")] * 2, "delta": 0.0, "delta_ci95": [0.0, 0.0],
           "no_signal": False}
    assert "nan" not in _share(row) and "no signal" in _share(row)
    assert "nan" not in _share({**row, "no_signal": True})


def _readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S)
    return [line.strip() for b in blocks for line in b.splitlines() if line.strip().startswith("interp ")]


def _tiny(argv: list[str], files: dict[str, str]) -> list[str]:
    """A README command with tiny sizes and the tiny models in place of T and S."""
    out = [files.get(a, a) if a in ("T", "S") else a for a in argv]
    sizes = {"--n-per-subcase": "2", "--n": "30" if out[:2] == ["data", "nli"] else "12"}
    for i, a in enumerate(out[:-1]):
        if a in sizes:
            out[i + 1] = sizes[a]
    if out[0] in ("patch", "circuit", "compare") and "--n" not in out:
        out += ["--n", "12"]
    if out[0] in ("patch", "circuit"):
        out.append("--allow-no-signal")  # random tiny models: the gap may be noise
    return out


def test_readme_commands_run_from_a_clean_folder(files, tmp_path, monkeypatch, capsys):
    """Every `interp ...` line of the README's bash blocks, in order, in an empty folder (with tiny models
    and sizes): a README command that does not work, or uses a file no earlier command makes, fails here."""
    commands = _readme_commands()
    assert any(c.startswith("interp data hans") for c in commands) and any(" cka " in c for c in commands)
    monkeypatch.chdir(tmp_path)
    ran = 0
    for line in commands:
        argv = shlex.split(line, comments=True)[1:]
        if argv[0] in ("demo", "run") or "--help" in argv:  # the zoo / a study's real checkpoints: test_study.py
            continue
        argv = _tiny(argv, files)
        rc = main(argv)
        assert rc == 0, (line, argv, capsys.readouterr().err[-2000:])
        ran += 1
    assert ran >= 7


def test_the_console_entry_flushes_output_and_returns_the_status(tmp_path):
    # interp.cli.entry leaves without interpreter teardown (os._exit): piped output must still arrive whole,
    # files be written and the status be main's
    import subprocess
    import sys

    out = tmp_path / "hans.txt"
    ok = subprocess.run([sys.executable, "-m", "interp.cli", "data", "hans", "--out", str(out), "--n", "1"],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == f"wrote 30 HANS examples (1 per subcase, seed 0) -> {out}"
    assert len(out.read_text().splitlines()) == 31  # header + 30 rows
    bad = subprocess.run([sys.executable, "-m", "interp.cli", "circuit", "--model", str(tmp_path)], capture_output=True,
                         text=True)
    assert bad.returncode == 2 and "required: --out" in bad.stderr
