"""The files signed with UGC_AUDIT_KEY (checkpoints, the erasure journal, a backup's manifest) read back
as signed or not, whatever an intruder wrote into their `signature`: a refusal that names the file,
never an exception out of the comparison."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ugc.platform.backup_manifest import BackupRefused, data_key_check, read_manifest, write_manifest
from ugc.platform.checkpoints import read_checkpoint, write_checkpoint
from ugc.platform.erasure_journal import NAME, read_journal, record_erasure

KEY = "test-audit-key-that-is-long-enough-1357924680"
DATA_KEY = "test-data-key-that-is-long-enough-2468013579"

# Not the key's hex: other hex, text with non-ASCII characters (hmac.compare_digest refuses to
# compare a str holding them), a number, nothing.
FORGED = [
    pytest.param(forged, id=name)
    for name, forged in [
        ("other-hex", "0" * 64),
        ("cyrillic", "подпись"),
        ("accented", "é" * 64),
        ("number", 12345),
        ("null", None),
    ]
]


def resigned(document: dict[str, object], forged: object) -> str:
    return json.dumps(document | {"signature": forged}, ensure_ascii=False)


@pytest.mark.parametrize("forged", FORGED)
def test_a_checkpoint_with_a_forged_signature_reads_as_unsigned(tmp_path: Path, forged: object) -> None:
    path = write_checkpoint(tmp_path, KEY, {"orders": None}, datetime.now(UTC))
    assert read_checkpoint(path, (KEY,)).signed
    path.write_text(resigned(json.loads(path.read_text()), forged))
    assert not read_checkpoint(path, (KEY,)).signed


@pytest.mark.parametrize("forged", FORGED)
def test_a_journal_line_with_a_forged_signature_is_named_and_the_others_kept(tmp_path: Path, forged: object) -> None:
    record_erasure(tmp_path, KEY, 5, "petr_shop", datetime.now(UTC))
    path = tmp_path / NAME
    line = json.loads(path.read_text())
    with path.open("a", encoding="utf-8") as journal:
        journal.write(resigned(line | {"user": 6}, forged) + "\n")
    journal_read = read_journal(tmp_path, (KEY,))
    assert [erasure.user for erasure in journal_read.erasures] == [5]
    [problem] = journal_read.problems
    assert "line 2" in problem and "UGC_AUDIT_KEY" in problem


@pytest.mark.parametrize("forged", FORGED)
def test_a_manifest_with_a_forged_signature_is_refused(tmp_path: Path, forged: object) -> None:
    path = write_manifest(tmp_path, KEY, {"files": {}})
    path.write_text(resigned(json.loads(path.read_text()), forged))
    with pytest.raises(BackupRefused, match="not signed with this UGC_AUDIT_KEY"):
        read_manifest(tmp_path, (KEY,), DATA_KEY)


def test_a_journal_that_cannot_be_read_is_a_problem_named_not_an_exception(tmp_path: Path) -> None:
    (tmp_path / NAME).mkdir()  # whoever can write the directory can put anything under the journal's name
    journal = read_journal(tmp_path, (KEY,))
    assert journal.erasures == [] and len(journal.problems) == 1
    assert f"{tmp_path / NAME} cannot be read" in journal.problems[0]


def test_what_a_key_being_rotated_out_signed_reads_as_signed_while_that_key_is_given(tmp_path: Path) -> None:
    new_key = "new-audit-key-that-is-long-enough-0864297531"
    path = write_checkpoint(tmp_path, KEY, {"orders": None}, datetime.now(UTC))
    record_erasure(tmp_path, KEY, 5, "petr_shop", datetime.now(UTC))
    (tmp_path / "backup").mkdir()
    write_manifest(tmp_path / "backup", KEY, {"files": {}, "data_key_check": data_key_check(DATA_KEY)})
    assert read_checkpoint(path, (new_key, KEY)).signed and not read_checkpoint(path, (new_key,)).signed
    assert [erasure.user for erasure in read_journal(tmp_path, (new_key, KEY)).erasures] == [5]
    assert read_journal(tmp_path, (new_key,)).erasures == []
    assert read_manifest(tmp_path / "backup", (new_key, KEY), DATA_KEY)["files"] == {}
    with pytest.raises(BackupRefused, match="not signed with this UGC_AUDIT_KEY"):
        read_manifest(tmp_path / "backup", (new_key,), DATA_KEY)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"written_at": "x", "signature": "y"}', "no 'heads' field"),
        ('{"heads": [], "written_at": "x", "signature": "y"}', "a field of the wrong type"),
        ('{"heads": {"orders": {"position": 1, "link": "zz"}}, "written_at": "x"}', "a malformed value"),
        ("{", "not JSON"),
    ],
)
def test_an_unreadable_file_is_named_with_what_is_wrong_in_words(tmp_path: Path, text: str, reason: str) -> None:
    """Python's own text stood for the reason: `'heads'` for a field missing, `'list' object has no
    attribute 'items'` for one of the wrong type."""
    path = tmp_path / "checkpoint-bad.json"
    path.write_text(text)
    with pytest.raises(ValueError, match="checkpoint-bad.json is not a readable checkpoint: ") as raised:
        read_checkpoint(path, (KEY,))
    assert reason in str(raised.value), raised.value
    (tmp_path / NAME).write_text('{"format": "ugc-erasure/1", "user": 1, "username": "x"}\n')
    (problem,) = read_journal(tmp_path, (KEY,)).problems
    assert problem.endswith("line 1 is not a readable erasure: no 'erased_at' field"), problem
