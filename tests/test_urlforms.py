"""Weight URLs as users paste them: the URL that serves the file, and the name it is stored under."""

from __future__ import annotations

import pytest

from weightkit.urlforms import (
    civitai_model_id,
    display_url,
    is_weight_url,
    normalise_weight_url,
    safe_file_name,
    stable_weight_name,
    url_problem,
)

RESOLVE = "https://huggingface.co/org/repo/resolve/main/loras/style.safetensors"


@pytest.mark.parametrize(
    ("pasted", "served"),
    [
        ("https://huggingface.co/org/repo/blob/main/loras/style.safetensors", RESOLVE),
        (" https://huggingface.co/org/repo/blob/main/loras/style.safetensors?download=true ", RESOLVE),
        (RESOLVE + "?download=true", RESOLVE),
        ("https://hf.co/org/repo/blob/main/loras/style.safetensors", RESOLVE),
        ("hf://org/repo/loras/style.safetensors", RESOLVE),
        ("hf://org/repo/loras/style.safetensors@v1.0", RESOLVE.replace("/main/", "/v1.0/")),
        (
            "https://huggingface.co/datasets/org/data/blob/abc123/x.pt",
            "https://huggingface.co/datasets/org/data/resolve/abc123/x.pt",
        ),
        (
            "https://civitai.com/models/4384/dreamshaper?modelVersionId=128713",
            "https://civitai.com/api/download/models/128713",
        ),
        (
            "https://civitai.com/models/4384?modelVersionId=128713",
            "https://civitai.com/api/download/models/128713",
        ),
        ("https://civitai.com/api/download/models/128713", "https://civitai.com/api/download/models/128713"),
        ("https://example.com/blob/main/x.safetensors", "https://example.com/blob/main/x.safetensors"),
    ],
)
def test_pasted_urls_become_the_url_of_the_file(pasted, served):
    assert normalise_weight_url(pasted) == served


def test_a_civitai_model_page_without_a_version_names_the_model_to_look_up():
    assert civitai_model_id("https://civitai.com/models/4384/dreamshaper") == "4384"
    assert civitai_model_id("https://civitai.com/models/4384?modelVersionId=1") is None
    assert normalise_weight_url("https://civitai.com/models/4384") == "https://civitai.com/models/4384"


def test_every_form_of_one_file_gets_one_readable_stable_name():
    forms = [
        RESOLVE,
        "https://huggingface.co/org/repo/blob/main/loras/style.safetensors",
        "hf://org/repo/loras/style.safetensors",
        RESOLVE + "?download=true",
    ]
    names = {stable_weight_name(form) for form in forms}
    assert len(names) == 1 and names.pop().endswith("-style.safetensors")
    assert stable_weight_name(RESOLVE.replace("/main/", "/v2/")) != stable_weight_name(RESOLVE)


def test_a_civitai_download_is_named_by_its_version():
    name = stable_weight_name("https://civitai.com/models/4384?modelVersionId=128713")
    assert name.endswith("-civitai-128713.safetensors")
    assert name == stable_weight_name("https://civitai.com/api/download/models/128713?token=abc")


@pytest.mark.parametrize(
    ("value", "is_url"),
    [("hf://a/b/c.safetensors", True), ("HTTPS://x/y", True), ("x.safetensors", False), ("ftp://x", False)],
)
def test_weight_urls_are_told_from_names(value, is_url):
    assert is_weight_url(value) is is_url


@pytest.mark.parametrize(
    ("one", "other", "same"),
    [
        (
            "https://huggingface.co/u/r/resolve/main/x.safetensors?download=true",
            "https://huggingface.co/u/r/resolve/main/x.safetensors",
            True,
        ),
        (
            "https://civitai.com/api/download/models/1?token=aaa",
            "https://civitai.com/api/download/models/1?token=bbb",
            True,
        ),
        (
            "https://bucket.s3.amazonaws.com/x.safetensors?X-Amz-Signature=1&X-Amz-Expires=60",
            "https://bucket.s3.amazonaws.com/x.safetensors?X-Amz-Signature=2&X-Amz-Expires=90",
            True,
        ),
        ("https://HOST.example/x.safetensors#frag", "https://host.example/x.safetensors", True),
        ("https://civitai.com/api/download/models/1", "https://civitai.com/api/download/models/2", False),
        (
            "https://civitai.com/api/download/models/1?format=SafeTensor",
            "https://civitai.com/api/download/models/1?format=PickleTensor",
            False,
        ),
        ("https://a.example/x.safetensors", "https://b.example/x.safetensors", False),
    ],
)
def test_stable_weight_name_same_file_same_name(one: str, other: str, same: bool) -> None:
    assert (stable_weight_name(one) == stable_weight_name(other)) is same


def test_stable_weight_name_shape() -> None:
    name = stable_weight_name("https://example.com/models/My%20LoRA%20v2.safetensors")
    digest, _, rest = name.partition("-")
    assert len(digest) == 12 and int(digest, 16) >= 0
    assert rest == "My_LoRA_v2.safetensors"
    assert stable_weight_name("https://example.com/").endswith("-weight.safetensors")
    assert stable_weight_name("https://example.com/x.ckpt").endswith("-x.ckpt")


HF = "https://huggingface.co"


@pytest.mark.parametrize(
    ("pasted", "served"),
    [
        ("hf://org/repo/dir/f.safetensors", f"{HF}/org/repo/resolve/main/dir/f.safetensors"),
        ("hf://org/repo@v1/f.safetensors", f"{HF}/org/repo/resolve/v1/f.safetensors"),
        ("hf://org/repo@v1/dir/f@2x.safetensors", f"{HF}/org/repo/resolve/v1/dir/f@2x.safetensors"),
        ("hf://org/repo@refs%2Fpr%2F3/f.pt", f"{HF}/org/repo/resolve/refs%2Fpr%2F3/f.pt"),
        ("hf://org/repo@refs/pr/3/f.pt", f"{HF}/org/repo/resolve/refs%2Fpr%2F3/f.pt"),
        ("hf://datasets/org/repo/f.pt", f"{HF}/datasets/org/repo/resolve/main/f.pt"),
        ("hf://datasets/org/repo@abc123/d/f.pt", f"{HF}/datasets/org/repo/resolve/abc123/d/f.pt"),
        ("hf://spaces/org/app/f.pt", f"{HF}/spaces/org/app/resolve/main/f.pt"),
        ("hf://org/repo/f.safetensors@v1.0", f"{HF}/org/repo/resolve/v1.0/f.safetensors"),  # README's form
        ("HF://org/repo/f.pt", f"{HF}/org/repo/resolve/main/f.pt"),
        (f"{HF}/spaces/org/app/blob/main/f.pt", f"{HF}/spaces/org/app/resolve/main/f.pt"),
    ],
)
def test_hf_paths_of_huggingface_hubs_grammar_become_resolve_urls(pasted, served):
    assert normalise_weight_url(pasted) == served and url_problem(pasted) is None


@pytest.mark.parametrize(
    "pasted", ["hf://org/repo", "hf://org/repo@v1", "hf://org/repo@/f.pt", "hf://org//f.pt"]
)
def test_hf_paths_naming_no_file_are_refused(pasted):
    assert url_problem(pasted) is not None and "hf://<org>/<repo>" in str(url_problem(pasted))


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://[::1/x.safetensors", "Invalid IPv6 URL"),
        ("http://h.example:99999/x.safetensors", "Port out of range"),
        ("http://h.example:port/x.safetensors", "not a well-formed URL"),
        ("http:///x.safetensors", "with a host name"),
        ("https://h.example/a b.safetensors", "percent-encode"),
    ],
)
def test_malformed_urls_are_named_without_raising(url, says):
    assert says in str(url_problem(url))
    assert normalise_weight_url(url) == url.strip() and civitai_model_id(url) is None


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:pw@[::1/x.safetensors?token=secret#f", "http://[::1/x.safetensors"),
        ("https://user:pw@h.example/x.safetensors?sig=1", "https://h.example/x.safetensors"),
        ("[::1/x?token=secret", "[::1/x"),
    ],
)
def test_display_url_never_raises_and_never_shows_secrets(url, shown):
    assert display_url(url) == shown


@pytest.mark.parametrize("letter", ["模", "é", "𠀀"])
def test_a_long_name_is_cut_to_120_utf8_bytes_keeping_its_extension(letter):
    name = safe_file_name(letter * 300 + ".safetensors")
    assert len(name.encode("utf-8")) <= 120 and name.endswith(letter + ".safetensors")
    stored = stable_weight_name("https://h.example/" + letter * 300 + ".safetensors")
    assert len(stored.encode("utf-8")) <= 140 and stored.endswith(".safetensors")
    assert len(safe_file_name(letter * 300).encode("utf-8")) <= 120
