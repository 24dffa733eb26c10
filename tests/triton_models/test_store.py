"""The model store: install, require, verify, and a pull that fails clearly without the hub."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from toolmesh.cli import app
from toolmesh_models.errors import WeightsMissing
from toolmesh_models.store import CATALOG, HubUnreachable, ModelStore, StoreError


def snapshot(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"model_type": "clip"}')
    (folder / "sub").mkdir()
    (folder / "sub" / "weights.safetensors").write_bytes(b"\0" * 1000)
    return folder


def test_require_names_the_pull_command(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    with pytest.raises(WeightsMissing) as caught:
        store.require("clip", function="best_text_match")
    message = str(caught.value)
    assert "best_text_match needs the weights 'clip' (openai/clip-vit-base-patch32)" in message
    assert f"TOOLMESH_MODEL_DIR={store.root} toolmesh models pull clip" in message
    assert not store.has("clip")


def test_add_records_revision_and_sha256(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    record = store.add("clip", snapshot(tmp_path / "snap"), revision="abc123")
    assert record.revision == "abc123" and record.repo == CATALOG["clip"].repo
    assert set(record.files) == {"config.json", "sub/weights.safetensors"}
    assert all(len(digest) == 64 for digest in record.files.values())
    assert store.require("clip", function="f") == store.root / "clip" / "abc123"
    manifest = json.loads((store.root / "manifest.json").read_text())
    assert manifest["models"]["clip"]["revision"] == "abc123"
    assert store.verify() == {"clip": []}
    # a new revision replaces the old folder
    store.add("clip", tmp_path / "snap", revision="def456")
    assert not (store.root / "clip" / "abc123").exists()


def test_verify_detects_changed_and_missing_files(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "store")
    record = store.add("depth", snapshot(tmp_path / "snap"))
    (record.path / "config.json").write_text("{}")
    assert store.verify() == {"depth": ["config.json: sha256 differs from the manifest"]}
    (record.path / "sub" / "weights.safetensors").unlink()
    with pytest.raises(WeightsMissing, match="files are missing"):
        store.require("depth", function="compute_depth")


def test_pull_fails_clearly_without_the_hub(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # this machine has no hub either way
    store = ModelStore(tmp_path / "store")
    with pytest.raises(HubUnreachable, match=r"toolmesh models pull clip --from DIR"):
        store.pull("clip")
    with pytest.raises(StoreError, match="unknown model 'nope'"):
        store.pull("nope")
    assert store.installed() == {}


def test_cli_models_ls_pull_verify(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    runner = CliRunner()
    store = str(tmp_path / "store")
    listing = runner.invoke(app, ["models", "ls", "--store", store])
    assert (
        listing.exit_code == 0 and "not installed" in listing.output and "owlv2" in listing.output
    )
    offline = runner.invoke(app, ["models", "pull", "caption", "--store", store])
    assert offline.exit_code == 2 and "unknown model 'caption'" in offline.output
    offline = runner.invoke(app, ["models", "pull", "blip-caption", "--store", store])
    assert offline.exit_code == 1 and "cannot reach the model hub" in offline.output
    copied = runner.invoke(
        app,
        [
            "models",
            "pull",
            "blip-caption",
            "--from",
            str(snapshot(tmp_path / "s")),
            "--store",
            store,
        ],
    )
    assert copied.exit_code == 0, copied.output
    assert runner.invoke(app, ["models", "verify", "--store", store]).exit_code == 0
    (Path(store) / "blip-caption" / "local" / "config.json").write_text("x")
    broken = runner.invoke(app, ["models", "verify", "--store", store])
    assert broken.exit_code == 1 and "sha256 differs" in broken.output
