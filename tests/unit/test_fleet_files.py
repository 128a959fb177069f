"""Which files of a cohorts folder are cohorts, and where each one's state is kept."""

from pathlib import Path

from service.adapters.store.leases import schema_of
from service.domain.ports import Purpose
from service.fleet import cohort_files, cohort_state, found_cohort_state


def test_every_yaml_file_is_a_cohort_named_by_its_stem(tmp_path):
    for name in ("spring-2027.yaml", "autumn_2027.yaml", "notes.txt", "bad name.yaml", "spring_2027.yaml"):
        (tmp_path / name).write_text("name: x\n", encoding="utf-8")
    found, problems = cohort_files(tmp_path)
    assert sorted(found) == ["autumn_2027", "spring-2027"]
    messages = sorted(f"{Path(p.file).name}: {p.message}" for p in problems)
    assert messages == [
        "bad name.yaml: a cohort file's name is letters, digits, - and _ (at most 48)",
        "spring_2027.yaml: its name and 'spring-2027' differ only in case or - and _",
    ]


def test_each_cohort_has_a_schema_or_a_file_of_its_own(tmp_path):
    assert schema_of("Spring-2027") == "cohort_spring_2027"
    url = "postgresql+psycopg://db/mentorship"
    assert cohort_state(url, "spring") == url, "a database keeps every cohort, each in its schema"
    assert cohort_state(str(tmp_path), "spring") == str(tmp_path / "spring.sqlite")
    assert cohort_state(str(tmp_path), "spring", Purpose.REHEARSAL) == str(tmp_path / "spring.rehearsal.sqlite")
    assert found_cohort_state(str(tmp_path), "spring") is None
    (tmp_path / "spring.rehearsal.sqlite").write_bytes(b"")
    assert found_cohort_state(str(tmp_path), "spring") == str(tmp_path / "spring.rehearsal.sqlite")
