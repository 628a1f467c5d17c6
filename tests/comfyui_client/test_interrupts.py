"""A run stopped (interrupt, timeout, a cancelled thread) or cut off (a websocket drop) mid-prompt."""

from __future__ import annotations

import ctypes
from dataclasses import replace

import pytest
from cog import CancelationException

from comfyrun.errors import PromptInterruptedError, RunTimeoutError
from comfyui import ComfyUI
from tests.comfyui_watch import SLOW, SLOWER, history, in_thread, logged, upscale
from tests.tcp_proxy import CuttableProxy

pytestmark = pytest.mark.comfyui


def test_interrupt_stops_the_running_prompt(comfy):
    with logged("running node 3") as running:
        thread, result = in_thread(lambda: comfy.run(upscale("interrupted", size=SLOW)))
        assert running.wait(30)
        comfy.interrupt()
        thread.join(30)
    (error,) = result
    assert isinstance(error, PromptInterruptedError)
    assert (error.node_id, error.class_type) == ("3", "ImageUpscaleWithModel")


def test_timeout_interrupts_the_prompt_on_comfyui_and_fails_clearly(comfy):
    impatient = ComfyUI(replace(comfy.settings, url=comfy.url, run_timeout=0.3))
    impatient.start()
    try:
        with pytest.raises(RunTimeoutError) as info:
            impatient.run(upscale("timeout", size=SLOWER))
    finally:
        impatient.stop()
    assert "0.3 s" in str(info.value)
    entry = history(comfy, info.value.prompt_id)
    assert entry["status"]["messages"][-1][0] == "execution_interrupted"


def test_cancelling_the_predicting_thread_interrupts_the_prompt_on_comfyui(comfy):
    with logged("running node 3") as running, logged("queued prompt", logger="comfyui") as queued:
        thread, result = in_thread(lambda: comfy.run(upscale("cancelled", size=SLOW)))
        assert queued.wait(30) and running.wait(30)
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(thread.ident), ctypes.py_object(CancelationException)
        )
        thread.join(5)
    assert not thread.is_alive()
    assert [type(r) for r in result] == [CancelationException]
    prompt_id = queued.message.split()[-1]
    assert history(comfy, prompt_id)["status"]["messages"][-1][0] == "execution_interrupted"


def test_websocket_drop_mid_run_reconnects_and_returns_the_result_once(comfy, tmp_path):
    proxy = CuttableProxy(int(comfy.url.rsplit(":", 1)[1])).start()
    through = ComfyUI(replace(comfy.settings, url=proxy.url, output_dir=tmp_path))
    through.start()
    try:
        with logged("running node 3") as running, logged("reconnecting", logger="comfyrun.follow") as dropped:
            thread, result = in_thread(lambda: through.run(upscale("dropped", size=SLOW)))
            assert running.wait(30)
            proxy.cut()
            thread.join(60)
            assert dropped.is_set()
    finally:
        through.stop()
        proxy.stop()
    (outputs,) = result
    assert [(o.node_id, o.filename) for o in outputs] == [("4", "dropped_00001_.png")]


def test_a_timeout_whose_interrupt_fails_says_the_prompt_may_still_run(comfy, tmp_path):
    proxy = CuttableProxy(int(comfy.url.rsplit(":", 1)[1])).start()
    through = ComfyUI(replace(comfy.settings, url=proxy.url, output_dir=tmp_path, run_timeout=2.0))
    through.start()
    try:
        with logged("running node 3") as running:
            thread, result = in_thread(lambda: through.run(upscale("unreachable", size=SLOWER + 8)))
            assert running.wait(30)
            proxy.stop()  # ComfyUI is out of reach: neither the websocket nor /interrupt gets through
            thread.join(60)
    finally:
        through.stop()
        comfy.interrupt()  # it ran on
    (error,) = result
    assert isinstance(error, RunTimeoutError) and error.not_interrupted is not None
    assert "interrupting it on ComfyUI failed" in str(error) and "may still be running" in str(error)
