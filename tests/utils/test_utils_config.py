"""Config precedence (defaults < file < flags), unknown keys and bad values, JSON and TOML config files."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from facelab.errors import FacelabError
from facelab.utils.config import build_config, config_to_dict, load_config_file


@dataclass(frozen=True)
class Demo:
    size: int = 64
    name: str = "default"
    rate: float = 0.5
    dims: tuple[int, ...] = (1, 2)

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError("size must be >= 1")


def test_defaults_then_file_then_flags():
    assert build_config(Demo) == Demo()
    file = {"size": 128, "name": "from-file"}
    flags = {"name": "from-flag", "rate": None}  # an unset flag never overrides
    assert build_config(Demo, file, flags) == Demo(size=128, name="from-flag", rate=0.5)
    assert build_config(Demo, None, {}, {"rate": 0.25}) == Demo(rate=0.25)
    assert build_config(Demo, {"size": None}) == Demo()


def test_unknown_keys_are_an_error_naming_them():
    with pytest.raises(FacelabError, match=r"unknown train option\(s\): colour, sise; known: dims, name, rate, size"):
        build_config(Demo, {"sise": 1, "colour": "red", "size": 2}, source="train")


@pytest.mark.parametrize("layer", [{"size": 0}, {"size": "big"}])  # ValueError, TypeError from __post_init__
def test_bad_values_are_one_user_error(layer):
    with pytest.raises(FacelabError, match="^invalid config: "):
        build_config(Demo, layer)


def test_config_to_dict_is_json_ready():
    assert config_to_dict(Demo(dims=(3, 4))) == {"size": 64, "name": "default", "rate": 0.5, "dims": [3, 4]}


def test_json_and_toml_files(tmp_path):
    (tmp_path / "a.json").write_text('{"size": 96, "name": "j"}')
    (tmp_path / "b.toml").write_text('size = 32\nname = "t"\n[weights]\nalpha = 0.3\n')
    assert load_config_file(None) == {}
    assert load_config_file(tmp_path / "a.json") == {"size": 96, "name": "j"}
    assert load_config_file(str(tmp_path / "b.toml")) == {"size": 32, "name": "t", "weights": {"alpha": 0.3}}
    assert build_config(Demo, load_config_file(tmp_path / "a.json"), {"size": 48}) == Demo(size=48, name="j")


@pytest.mark.parametrize("name,data,expected", [
    ("bad.json", b"{size: 1", "is not valid json"),
    ("bad.toml", b"size = = 1", "is not valid toml"),
    ("list.json", b"[1, 2]", "must hold a table/object"),
    ("latin.json", b'{"name": "\xe9"}', "is not valid json"),
    ("noext", b"not json", "is not valid JSON"),
])
def test_a_bad_file_is_one_error_naming_the_path(tmp_path, name, data, expected):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(FacelabError, match=re.escape(str(path))) as info:
        load_config_file(path)
    assert expected in str(info.value)


def test_a_missing_file_names_the_path(tmp_path):
    with pytest.raises(FacelabError, match=re.escape(f"cannot read config file {tmp_path / 'none.toml'}")):
        load_config_file(tmp_path / "none.toml")
