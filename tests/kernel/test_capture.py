"""Captured output: routing by task context into threads, executors and asyncio; line splitting."""

from __future__ import annotations

import asyncio
import io
import logging
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from tqdm import tqdm

from jupyter_taskstream.kernel.capture import PendingOutput, StreamRouter, _router, thread_entries
from jupyter_taskstream.kernel.lines import MAX_PARTIAL_CHARS

from ..kernel_fixtures import lines, rt  # noqa: F401

pytestmark = pytest.mark.timeout(30)


def test_a_huge_line_is_kept_in_pieces(rt):
    with rt.task("huge") as t:
        print("y" * (3 * MAX_PARTIAL_CHARS + 5))
    pieces = lines(t)
    assert len(pieces) == 4 and "".join(pieces) == "y" * (3 * MAX_PARTIAL_CHARS + 5)


def test_print_in_a_task_goes_to_its_log_and_outside_goes_through(rt, capsys):
    print("before")
    with rt.task("t") as t:
        print("inside")
        print("err", file=sys.stderr)
    print("after")
    out = capsys.readouterr()
    assert out.out == "before\nafter\n" and out.err == ""
    assert t.snapshot()["log"] == [{"stream": "stdout", "text": "inside"}, {"stream": "stderr", "text": "err"}]
    assert isinstance(sys.stdout, StreamRouter) and isinstance(sys.stderr, StreamRouter)


def test_a_router_passes_the_originals_attributes_and_shares_its_own_across_threads():
    """The router is a `threading.local` (print()'s ``write`` lookup is the thread's own);
    everything but the per-thread entries must behave like one object's attributes."""

    class Original(io.StringIO):
        def __init__(self):
            super().__init__()
            self.session = "kernel session"  # an instance attribute, as ipykernel's OutStream has
            self.parent = None

        def set_parent(self, parent):
            self.parent = parent

    original = Original()
    router = _router("stdout", original)
    router.write("outside any task\n")
    router.set_parent({"msg_id": "m1"})
    assert original.getvalue() == "outside any task\n" and original.parent == {"msg_id": "m1"}
    assert router.session == "kernel session" and router.encoding == original.encoding
    assert router.getvalue() == original.getvalue() and not router.isatty()

    def marker(text):
        return text

    router.marker = marker
    seen = {}

    def elsewhere():
        seen.update(marker=router.marker, session=router.session, thread=thread_entries(router)["thread"])
        seen["write"] = router.write
        router.session = "set in another thread"

    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join(10)
    assert seen["marker"] is marker and seen["session"] == "kernel session"  # shared, and a function stays unbound
    assert seen["thread"] == thread.ident != thread_entries(router)["thread"]
    assert seen["write"] is router.write  # the routing function, the same in every thread
    assert router.session == "set in another thread" and original.session == "kernel session"
    del router.marker
    with pytest.raises(AttributeError):
        router.marker


def test_logging_handlers_made_after_and_before_install_are_routed(rt, monkeypatch):
    cell = io.StringIO()
    monkeypatch.setattr(sys, "stderr", cell)
    early = logging.StreamHandler()  # holds the StringIO, made before the router exists
    logger = logging.getLogger("test_capture.early")
    logger.addHandler(early)
    logger.propagate = False
    try:
        with rt.task("log") as t:
            assert early.stream is sys.stderr  # re-pointed at the router
            late = logging.StreamHandler()  # holds the router
            logger.addHandler(late)
            logger.warning("inside")
        logger.warning("outside")
    finally:
        logger.handlers.clear()
    assert lines(t, "stderr") == ["inside", "inside"]
    assert cell.getvalue() == "outside\noutside\n"


def test_threads_started_in_a_task_write_to_it(rt, capsys):
    with rt.task("threads") as t:
        workers = [threading.Thread(target=print, args=(f"thread {i}",)) for i in range(3)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()

    class Sub(threading.Thread):
        def run(self):
            print("subclass")

    with rt.task("subclass") as u:
        s = Sub()
        s.start()
        s.join()
    outside = threading.Thread(target=print, args=("not a task",))
    outside.start()
    outside.join()
    assert sorted(lines(t)) == ["thread 0", "thread 1", "thread 2"] and lines(u) == ["subclass"]
    assert capsys.readouterr().out == "not a task\n"


def test_executor_work_belongs_to_whoever_submitted_it(rt, capsys):
    pool = ThreadPoolExecutor(2)
    try:
        with rt.task("pool") as t:
            # The workers are spawned here, inside the task...
            for f in [pool.submit(print, f"item {i}") for i in range(4)]:
                f.result()
        # ...but work submitted later from outside must not be counted as the task's.
        pool.submit(print, "later").result()
        with rt.task("other") as u:
            pool.submit(print, "other item").result()
    finally:
        pool.shutdown()
    assert sorted(lines(t)) == [f"item {i}" for i in range(4)] and lines(u) == ["other item"]
    assert capsys.readouterr().out == "later\n"


def test_asyncio_tasks_and_run_in_executor_inherit_the_task(rt):
    async def child(i):
        await asyncio.sleep(0)
        print(f"coroutine {i}")

    async def main():
        await asyncio.gather(*(asyncio.create_task(child(i)) for i in range(3)))
        await asyncio.get_running_loop().run_in_executor(None, print, "executor")

    with rt.task("async") as t:
        asyncio.run(main())
    assert sorted(lines(t)) == ["coroutine 0", "coroutine 1", "coroutine 2", "executor"]


def test_a_tqdm_text_bar_stays_one_line(rt):
    """A text bar that rewrites itself with carriage returns is one line of the log.

    With the tqdm bridge on (integrations), tqdm inside a task draws nothing at all; this is the
    capture rule for bars that are not bridged, so the bridge is off here.
    """
    from jupyter_taskstream import integrations
    from jupyter_taskstream.integrations import tqdm as bridge

    was_on = bridge.installed()
    integrations.disable()
    try:
        with rt.task("bar") as t:
            for _ in tqdm(range(50), file=sys.stderr, mininterval=0, ascii=True):
                pass
    finally:
        if was_on:
            integrations.enable()
    bar = lines(t, "stderr")
    assert len(bar) == 1 and "50/50" in bar[0] and "\r" not in bar[0]


def test_run_threads_capture_and_output_after_the_end_goes_through(rt, capsys):
    release = threading.Event()

    def straggler():
        release.wait(5)
        print("after the task ended")

    def work():
        print("from run")
        threading.Thread(target=straggler).start()

    t = rt.run(work)
    t.result(5)
    release.set()
    # The straggler outlives its task: its output is not lost, it goes where it would have.
    from ..kernel_fixtures import wait_until

    wait_until(lambda: "after the task ended" in capsys.readouterr().out or None)
    assert lines(t) == ["from run"]


def test_a_burst_keeps_every_line_in_order_with_stderr_interleaved(rt):
    with rt.task("burst") as t:
        for i in range(3000):
            print("line", i)
            if i % 500 == 0:
                print("warn", i, file=sys.stderr, end="")  # a partial line across other writes...
                print(f" [{i}]", file=sys.stderr)  # ...ended later
    expected = []
    for i in range(3000):
        expected.append({"stream": "stdout", "text": f"line {i}"})
        if i % 500 == 0:
            expected.append({"stream": "stderr", "text": f"warn {i} [{i}]"})
    assert t.snapshot()["log"] == expected[-1000:]


def test_a_partial_line_of_one_stream_waits_while_the_other_writes(rt):
    with rt.task("mixed") as t:
        sys.stdout.write("a")
        sys.stderr.write("b\n")
        sys.stdout.write("c\rC\n")
        sys.stderr.write("tail")
        assert t.snapshot()["partial"] == "tail"
    assert t.snapshot()["log"] == [
        {"stream": "stderr", "text": "b"},
        {"stream": "stdout", "text": "C"},
        {"stream": "stderr", "text": "tail"},
    ]


def test_threads_writing_both_streams_at_once_keep_each_line_whole_and_on_its_stream(rt):
    def writer(k, stream):
        for i in range(2000):
            stream.write(f"t{k} {i}\n")  # one write per line, so lines of two threads cannot mix

    rt.config.log_lines = 8000
    with rt.task("threads") as t:
        streams = [sys.stdout, sys.stdout, sys.stderr, sys.stderr]
        workers = [threading.Thread(target=writer, args=(k, stream)) for k, stream in enumerate(streams)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    log = t.snapshot()["log"]
    assert len(log) == 8000
    for k in range(4):
        mine = [e for e in log if e["text"].startswith(f"t{k} ")]
        assert all(e["stream"] == ("stdout" if k < 2 else "stderr") for e in mine)
        assert [e["text"] for e in mine] == [f"t{k} {i}" for i in range(2000)]


def test_a_write_in_a_task_takes_only_str(rt):
    with rt.task("bytes"):
        with pytest.raises(TypeError, match="must be str, not bytes"):
            sys.stdout.write(b"raw")
        assert sys.stdout.write("ok\n") == 3


# ---- a `with` block owns its thread: print() appends in C (see capture.claim) --------------


def _fast(router) -> bool:
    """This thread's ``write`` is a chunk list's C append, not the routing function."""
    return getattr(router.write, "__self__", None).__class__ is list


def test_a_with_block_takes_the_fast_path_and_every_line_keeps_its_order(rt, capsys):
    with rt.task("fast") as t:
        print("first")  # tells the sender; from here this thread appends directly
        fast_inside = _fast(sys.stdout)
        for i in range(2000):
            print("line", i)
            if i % 500 == 0:
                print("err", i, file=sys.stderr)
                t.snapshot()  # a take in between: routing comes back, then the fast path again
    print("after")
    assert fast_inside and not _fast(sys.stdout)
    got = t.snapshot()["log"]
    want = [("stdout", "first")]
    for i in range(2000):
        want.append(("stdout", f"line {i}"))
        if i % 500 == 0:
            want.append(("stderr", f"err {i}"))
    assert [(e["stream"], e["text"]) for e in got] == want[-len(got):]
    assert capsys.readouterr().out == "after\n"


def test_other_threads_are_not_taken_in_while_a_block_owns_its_thread(rt, capsys):
    go, done = threading.Event(), threading.Event()

    def outsider():  # started before the task: not part of it
        go.wait(5)
        print("from outside the task")
        done.set()

    thread = threading.Thread(target=outsider)
    thread.start()
    with rt.task("owner") as t:
        print("one")
        assert _fast(sys.stdout)
        go.set()
        assert done.wait(5)
        print("two")
    thread.join(5)
    assert lines(t) == ["one", "two"]
    assert capsys.readouterr().out == "from outside the task\n"


def test_a_block_in_a_generator_never_owns_its_thread(rt):
    def steps():
        with rt.task("gen") as t:
            print("in the generator")
            yield _fast(sys.stdout)
            print("resumed")
            yield _fast(sys.stdout)
        yield t

    gen = steps()
    assert next(gen) is False
    assert _fast(sys.stdout) is False  # suspended mid-block: whatever runs now is routed
    assert next(gen) is False
    t = next(gen)
    assert lines(t)[0] == "in the generator" and lines(t)[-1] == "resumed"


def test_a_task_ended_from_another_thread_loses_nothing_its_block_prints_later(rt, capsys):
    with rt.task("ended elsewhere") as t:
        print("kept")
        assert _fast(sys.stdout)
        ender = threading.Thread(target=t.finish)
        ender.start()
        ender.join(5)
        print("after the end")
    assert lines(t) == ["kept"] and not _fast(sys.stdout)
    assert capsys.readouterr().out == "after the end\n"


def test_an_assigned_write_sees_output_outside_tasks_only(rt, capsys):
    """IPython 9 tees each cell's stdout into its history by assigning ``sys.stdout.write``."""
    with rt.task("installs the router"):
        pass
    stream = sys.stdout
    assert isinstance(stream, StreamRouter)
    original = stream.write
    seen = []

    def tee(data):
        seen.append(data)
        return original(data)

    stream.write = tee
    try:
        print("cell output")
        with rt.task("teed") as t:
            print("task output")
            assert _fast(stream)
        print("more cell output")
    finally:
        stream.write = original
    print("untouched")
    assert "".join(seen) == "cell output\nmore cell output\n"
    assert lines(t) == ["task output"]
    assert capsys.readouterr().out == "cell output\nmore cell output\nuntouched\n"
    with pytest.raises(TypeError, match="write must be callable"):
        stream.write = "not a function"


def test_a_take_right_after_the_notice_leaves_the_next_write_to_notice_again(rt):
    """An idle sender takes as soon as it is told: the writes after that take must tell it
    again, or a lone line waits for the pump's next pass (up to 100 ms)."""
    with rt.task("eager sender") as t:
        notices = []
        taken = []

        def notify():  # what the publisher's idle sender does: take at once
            notices.append(1)
            taken.extend(text for stream, text in t.pending_output.take() if stream == "stdout")

        t.pending_output.notify = notify
        for line in ("a", "b", "c"):
            before = len(notices)
            print(line)
            assert len(notices) > before  # this print's text was announced, not left for the pump
        assert "".join(taken) == "a\nb\nc\n"


def test_a_write_between_the_count_and_the_join_stays_for_the_next_take():
    """`take` joins the chunk list in place; a chunk appended after it counted them (a thread
    switch between the two) must neither be taken twice nor lost."""

    class Racing(list):
        raced = False

        def __len__(self):
            n = super().__len__()
            if not self.raced:
                self.raced = True
                self.append("late\n")  # another thread's write, right after the count
            return n

    out = PendingOutput(threading.Lock(), lambda: None)
    out.chunks = Racing(["a", "\n", ("err\n",)])
    assert out.take() == [("stdout", "a\n"), ("stderr", "err\n")]
    out.chunks.raced = False
    out.chunks += ["b\n"]
    assert out.take() == [("stdout", "late\nb\n")]  # joined, then the race: the copy is taken
    assert out.take() == [("stdout", "late\n")] and out.take() == []
