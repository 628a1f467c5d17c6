"""The stand-in ComfyUI, held against the recordings of a real ComfyUI v0.3.64 (tests/reference/comfyui).

The recorded session is replayed in its order on one server (so caching, file counters and prompt
numbers line up): the same workflows, uploads, model files and `/free` calls between them. Each case
is then compared with its recording (`standin_recordings.assert_matches_recording`). Cases recorded on
a fresh server run on one of their own, in test_standin_conformance_fresh.py (d_partial_invalid_legacy,
h_interrupt, extra_paths_priority).

Covered, with the fresh-server file: all 36 traced cases, d_no_prompt and d_bad_json, the uploads, the
startup snapshot, the recorded HTTP answers, the observer client, the websocket connect examples and the
hot-add listings.
Not compared: e_rerun0's two further runs (replayed for their effect on caching and numbering, but not
recorded), the hot-add preparation prompts 33-37 (not recorded; their saved files are recreated), and
`/experiment/models` (a front-end route the stand-in does not serve). Prompt numbers are compared
exactly up to g_preview_image; after h_interrupt (which needs its own server) they are only checked
to be numbers. With `COMFYUI_PATH` set this runs against that real ComfyUI instead.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from standin_process import ComfyProcess, start_comfyui
from standin_recordings import (
    MODELS,
    REPLAYS,
    Run,
    assert_matches_recording,
    normalize,
    png,
    ref,
    run_case,
)
from standin_wire import Answer, Frame, Socket, get, post, upload

pytestmark = REPLAYS

UPSCALERS = [p.name for p in MODELS.iterdir()] + ["slow_compact_x2.safetensors"]

# (case, extra fields of the POST /prompt body, whether the prompt number must equal the recording's)
SESSION: list[tuple[str, dict[str, Any], bool]] = [
    ("a", {}, True),
    ("b", {}, True),
    ("c", {}, True),
    ("d_unknown_class", {}, True),
    ("d_missing_ckpt", {}, True),
    ("d_missing_upscale_model", {}, True),
    ("d_no_outputs", {}, True),
    ("d_missing_link", {}, True),
    ("d_bad_values", {}, True),
    ("d_bad_combo", {}, True),
    ("d_partial_invalid", {}, True),
    ("e", {}, True),
    ("e_pth", {}, True),
    ("e_rerun0", {}, True),
    ("f_truncated", {}, True),
    ("f_header", {}, True),
    ("f_pth_truncated", {}, True),
    ("f_unknown_arch", {}, True),
    ("g_upscale_progress", {}, True),
    ("g_ws_binary_legacy", {}, True),
    ("g_ws_binary_flags", {}, True),
    ("g_preview_image", {}, True),
    ("i_oom", {}, False),
    ("i_custom_prompt_id", {"prompt_id": "lab-fixed-prompt-id-0001"}, False),
    ("i_custom_prompt_id_reuse", {"prompt_id": "lab-fixed-prompt-id-0001"}, False),
    ("i_extra_data", {"extra_data": {"lab_note": "hello"}}, False),
    ("i_other_client", {}, False),
    ("hotadd_subdir", {}, False),
    ("hotadd_use", {}, False),
    ("hotadd_overwrite", {}, False),
    ("hotadd_after_free", {}, False),
    ("hotadd_removed", {}, False),
]


@dataclass
class Session:
    comfy: ComfyProcess
    runs: dict[str, Run] = field(default_factory=dict)
    http: dict[str, Answer] = field(default_factory=dict)
    observer: list[Frame] = field(default_factory=list)
    history_ids: list[str] = field(default_factory=list)  # in first-run order
    ids_at_max_items: list[str] = field(default_factory=list)


def _before(session: Session, case: str) -> None:
    """What the recording session did between cases: uploads, model files, /free, deletions."""
    comfy = session.comfy
    url = comfy.url
    ups = comfy.dirs.models / "upscale_models"
    if case == "d_bad_combo":  # the recording sent these two between d_bad_values and d_bad_combo
        session.http["d_no_prompt"] = post(url, "/prompt", {"client_id": "x"})
        session.http["d_bad_json"] = post(url, "/prompt", raw=b"{not json")
    if case == "e_rerun0":
        session.http["free"] = post(url, "/free", {"unload_models": True, "free_memory": True})
    if case == "hotadd_subdir":
        session.http["history_max_items_5_after"] = get(url, "/history?max_items=5")
        session.ids_at_max_items = list(session.history_ids)
        session.http["listed_before"] = get(url, "/models/upscale_models")
        shutil.copy(MODELS / "tiny_compact_x2.safetensors", ups / "hot_added.safetensors")
        session.http["listed_after_copy"] = get(url, "/models/upscale_models")
        session.http["object_info_after_copy"] = get(url, "/object_info/UpscaleModelLoader")
        (ups / "sub").mkdir()
        shutil.copy(MODELS / "tiny_compact_x2.safetensors", ups / "sub" / "hot_in_subdir.safetensors")
        session.http["listed_after_subdir_copy"] = get(url, "/models/upscale_models")
        for prefix in ("hot1s", "hot1", "hot2", "hot3", "hot4"):  # runs 33-37 of the recording saved these
            (comfy.dirs.output / f"{prefix}_00001_.png").write_bytes(png((0, 0, 0)))
    if case == "hotadd_overwrite":  # other valid weights under the same name
        data = bytearray((MODELS / "tiny_compact_x2.safetensors").read_bytes())
        data[-4:] = b"\x00\x00\x80\x3f"
        (ups / "hot_added.safetensors").write_bytes(bytes(data))
    if case == "hotadd_after_free":
        session.http["free_after_overwrite"] = post(
            url, "/free", {"unload_models": True, "free_memory": True}
        )
    if case == "hotadd_removed":
        (ups / "hot_added.safetensors").unlink()


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    with start_comfyui(tmp_path_factory.mktemp("comfy"), args=["--disable-metadata"]) as comfy:
        s = Session(comfy)
        url = comfy.url
        for name in ("prompt", "queue", "embeddings", "models", "features", "extensions", "system_stats"):
            s.http[name] = get(url, f"/{name}")
        s.http["history_max_items_5"] = get(url, "/history?max_items=5")
        ups = comfy.dirs.model_folder("upscale_models")
        for name in UPSCALERS:
            source = name if name != "slow_compact_x2.safetensors" else "tiny_compact_x2.safetensors"
            shutil.copy(MODELS / source, ups / name)
        s.http["models_checkpoints"] = get(url, "/models/checkpoints")
        s.http["upload_c"] = upload(url, "lab_input.png", png((10, 200, 30)))
        s.http["upload_c_duplicate"] = upload(url, "lab_input.png", png((10, 200, 30)))
        s.http["upload_c_renamed"] = upload(url, "lab_input.png", png((200, 10, 30)))
        s.http["upload_c_nofile"] = upload(url, None, b"", type="input")
        s.http["upload_c_subfolder_temp"] = upload(
            url, "sub.png", png((1, 2, 3)), subfolder="labsub", type="temp"
        )
        (comfy.dirs.input / "example.png").write_bytes(png((9, 9, 9)))

        for case, body, _ in SESSION:
            _before(s, case)
            if case == "i_other_client":
                with Socket(comfy.ws_url("observer-lab")) as observer:
                    s.observer.append(observer.receive())
                    s.runs[case] = run_case(comfy, case, **body)
                    s.observer += [observer.receive(5) for _ in range(3)]
            else:
                s.runs[case] = run_case(comfy, case, feature_flags=case == "g_ws_binary_flags", **body)
            if case == "e_rerun0":  # the recording ran it twice more, each after a /free
                for _ in range(2):
                    post(url, "/free", {"unload_models": True, "free_memory": True})
                    run_case(comfy, case)
            if s.runs[case].prompt_id and s.runs[case].prompt_id not in s.history_ids:
                s.history_ids.append(s.runs[case].prompt_id)

        (comfy.dirs.input / "deleted_after_listing.png").write_bytes(png((5, 5, 5)))
        s.http["deleted_listing"] = get(url, "/object_info/LoadImage")
        (comfy.dirs.input / "deleted_after_listing.png").unlink()
        s.runs["hotadd_removed_oldstyle"] = run_case(comfy, "hotadd_removed_oldstyle")
        for name in (
            "object_info",
            "object_info/LoadImage",
            "object_info/UpscaleModelLoader",
            "object_info/NoSuchNode_Lab",
            "history/00000000-0000-0000-0000-000000000000",
            "api/prompt",
            "models/nope",
            "models/upscale_models",
            "internal/folder_paths",
            "internal/files/output",
            "view?filename=nope.png&type=output",
            "view?filename=..%2Fmain.py&type=output",
        ):
            s.http[name] = get(url, f"/{name}")
        s.http["interrupt_idle"] = post(url, "/interrupt", raw=b"")
        yield s


@pytest.mark.parametrize("case,body,exact_number", SESSION, ids=[c for c, _, _ in SESSION])
def test_case_matches_its_recording(
    session: Session, case: str, body: dict[str, Any], exact_number: bool
) -> None:
    assert_matches_recording(case, session.runs[case], exact_number=exact_number)


def test_oldstyle_loader_of_a_deleted_input_file_fails_custom_validation(session: Session) -> None:
    assert_matches_recording(
        "hotadd_removed_oldstyle", session.runs["hotadd_removed_oldstyle"], exact_number=False
    )


def test_error_answers_without_a_prompt_or_with_a_body_that_is_not_json(session: Session) -> None:
    for case in ("d_no_prompt", "d_bad_json"):
        recorded = ref(f"error_{case}.json")
        answer = session.http[case]
        assert (answer.status, answer.content_type) == (
            recorded["status"],
            recorded["content_type"].split(";")[0],
        )
        body = answer.json() if case == "d_no_prompt" else answer.body.decode()
        assert body == recorded["body"]


def test_startup_answers_match_the_startup_snapshot(session: Session) -> None:
    for name in ("prompt", "queue", "embeddings", "models", "features", "extensions", "models_checkpoints"):
        assert session.http[name].json() == ref(f"{name}.json"), name
    assert session.http["history_max_items_5"].json() == {}
    stats, recorded = session.http["system_stats"].json(), ref("system_stats.json")
    assert stats.keys() == recorded.keys()
    assert stats["system"].keys() == recorded["system"].keys()
    assert [d.keys() for d in stats["devices"]] == [d.keys() for d in recorded["devices"]]
    assert stats["system"]["comfyui_version"] == recorded["system"]["comfyui_version"]


def test_uploads_keep_duplicates_rename_collisions_and_honour_subfolder_and_type(session: Session) -> None:
    for name in (
        "upload_c",
        "upload_c_duplicate",
        "upload_c_renamed",
        "upload_c_nofile",
        "upload_c_subfolder_temp",
    ):
        recorded, answer = ref(f"{name}.json"), session.http[name]
        assert answer.status == recorded["status"], name
        assert (answer.json() if recorded["body"] else answer.body.decode()) == recorded["body"], name
    assert (session.comfy.dirs.temp / "labsub" / "sub.png").is_file()


def test_http_answers_match_the_recorded_ones(session: Session) -> None:
    recorded_files = {
        "api/prompt": "http_api_prefix_prompt",
        "history/00000000-0000-0000-0000-000000000000": "http_history_unknown",
        "models/nope": "http_models_unknown_folder",
        "object_info/NoSuchNode_Lab": "http_object_info_unknown",
        "view?filename=nope.png&type=output": "http_view_missing",
        "view?filename=..%2Fmain.py&type=output": "http_view_traversal",
        "interrupt_idle": "http_interrupt_idle",
        "free": "http_free",
        "object_info/LoadImage": "http_object_info_LoadImage",
    }
    for key, name in recorded_files.items():
        recorded, answer = ref(f"{name}.json"), session.http[key]
        assert answer.status == recorded["status"], key
        assert answer.content_type == ((recorded["content_type"] or "").split(";")[0] or None), key
        assert (answer.json() if recorded["body"] != "" else answer.body.decode()) == recorded["body"], key


def test_model_listings_are_fresh_on_every_request_subfolders_included(session: Session) -> None:
    http, hotadd = session.http, ref("hotadd_results.json")
    assert http["listed_before"].json() == hotadd["listed_before"]
    assert http["listed_before"].json() == ref("http_models_upscale_models.json")["body"]
    assert http["listed_after_copy"].json() == hotadd["listed_after_copy"]
    options = http["object_info_after_copy"].json()["UpscaleModelLoader"]["input"]["required"]["model_name"][
        1
    ]
    assert options["options"] == hotadd["object_info_options_after_copy"]
    assert http["listed_after_subdir_copy"].json() == hotadd["listed_after_subdir_copy"]
    after_removal = [name for name in hotadd["listed_after_subdir_copy"] if name != "hot_added.safetensors"]
    assert http["models/upscale_models"].json() == after_removal
    recorded = ref("http_object_info_UpscaleModelLoader.json")["body"]["UpscaleModelLoader"]
    recorded["input"]["required"]["model_name"][1]["options"] = after_removal
    assert http["object_info/UpscaleModelLoader"].json()["UpscaleModelLoader"] == recorded
    assert "deleted_after_listing.png" in json.dumps(http["deleted_listing"].json())


def test_history_max_items_gives_the_last_entries_in_first_insertion_order(session: Session) -> None:
    answer = session.http["history_max_items_5_after"].json()
    assert list(answer) == session.ids_at_max_items[-5:]
    assert list(answer)[2] == "lab-fixed-prompt-id-0001"
    reused = answer["lab-fixed-prompt-id-0001"]["prompt"][2]["3"]["inputs"]["filename_prefix"]
    assert reused == "case_i_pid2"


def test_messages_go_only_to_the_client_that_queued_the_prompt(session: Session) -> None:
    observed = [f.msg for f in session.observer]
    assert normalize(observed, {}) == normalize(ref("trace_i_observer.json"), {})


def test_folder_registry_matches_comfyuis_with_the_base_directory_for_the_checkout(session: Session) -> None:
    base = str(session.comfy.dirs.base)
    live = {
        k: [p.replace(base, "<ComfyUI>") for p in v]
        for k, v in session.http["internal/folder_paths"].json().items()
    }
    assert live == ref("http_internal_folder_paths.json")["body"]
    files = session.http["internal/files/output"].json()
    assert files and all(isinstance(name, str) for name in files)


def test_object_info_is_the_recorded_one_with_file_lists_from_disk(session: Session) -> None:
    live = session.http["object_info"].json()
    recorded = ref("object_info.json")
    loaders = ref("loader_inputs.json")["mapping"]
    assert list(live) == list(recorded)
    for name, info in recorded.items():
        if name not in loaders and name not in ("LoadImage", "LoadImageMask"):
            assert live[name] == info, name
    ups = get(session.comfy.url, "/models/upscale_models").json()
    assert live["UpscaleModelLoader"]["input"]["required"]["model_name"][1]["options"] == ups
    assert (
        live["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"]
        == recorded["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"]
    )
    assert live["VAELoader"]["input"]["required"]["vae_name"][0] == ["pixel_space"]
    assert live["LoadImage"]["input"]["required"]["image"][0] == [
        "example.png",
        "lab_input (1).png",
        "lab_input.png",
    ]


def test_websocket_without_client_id_gets_a_generated_sid_and_feature_flags_are_answered(
    session: Session,
) -> None:
    recorded = ref("ws_connect_examples.json")
    with Socket(session.comfy.ws_url()) as socket:
        first = socket.receive().msg
    assert re.fullmatch(r"[0-9a-f]{32}", first["data"]["sid"])
    assert normalize(first, {}) == normalize(recorded["connect_without_clientId_first_message"], {})
    with Socket(session.comfy.ws_url("lab-fixed")) as socket:
        frames = [socket.receive()]
        socket.send_json({"type": "feature_flags", "data": {"supports_preview_metadata": True}})
        frames.append(socket.receive())
    assert [f.msg for f in frames] == recorded["connect_with_clientId_and_feature_flags"]
