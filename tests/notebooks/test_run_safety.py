"""Crash-safe runs: real `k3smig` processes, real kernels, real SIGKILL, real locks.

Waits are bounded polls on files and processes (a slow machine only waits longer); nothing asserts
how long anything took.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from jupyter_core.utils import run_sync

from k3smig_lib.cli import main
from k3smig_lib.core.config import BUNDLED_EXAMPLE
from k3smig_lib.core.dirlock import DirectoryLock
from k3smig_lib.runbook import runner
from k3smig_lib.runbook.kernels import RunKernelManager
from k3smig_lib.runbook.ledger import verify
from k3smig_lib.runbook.warm import PhaseKernels
from k3smig_lib.sandbox.procs import listening_sockets

pytestmark = pytest.mark.notebooks
K3SMIG = Path(sys.executable).with_name("k3smig")


def params(tmp_path, **extra):
    path = tmp_path / "p.yaml"
    values = {"environment": "ci", "apply": True, "age_recipient": "auto", "target_dir": str(tmp_path / "target"),
              **extra}
    path.write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in values.items()))
    return path


def wait_for(predicate, what, timeout=600.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"gave up waiting for {what}")


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


def children(pid):
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def sockets_under(folder):
    return sorted(p for p in folder.rglob("*") if p.is_socket())


def k3smig(*args, env, cwd):
    return subprocess.Popen([str(K3SMIG), *args], env=env, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_phases_that_select_nothing_leave_no_run_folder(tmp_path, capsys):
    assert main(["run", str(params(tmp_path)), "--phases", "95", "--runs", str(tmp_path / "runs")]) == 2  # usage
    assert "selects no phase" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_a_hostile_snapshot_is_refused_before_the_first_phase_and_writes_nothing(tmp_path, capsys):
    snapshot = tmp_path / "snapshot"
    shutil.copytree(BUNDLED_EXAMPLE, snapshot)
    (snapshot / "manifests" / "pgadmin" / "evil.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg, namespace: pgadmin}\n"
        "data: {../../../../PWNED-key: owned}\n")
    code = main(["run", str(params(tmp_path, source_snapshot=str(snapshot))), "--phases", "40-70",
                 "--runs", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 1 and "evil.yaml, document 1 (line 1)" in err and "'../../../../PWNED-key'" in err
    assert not (tmp_path / "runs").exists()
    assert list(tmp_path.rglob("PWNED*")) == []


def test_a_held_lock_refuses_the_run_and_a_dead_holder_is_taken_over(tmp_path, capsys):
    target = tmp_path / "target"
    holder = DirectoryLock(target, "20250101T000000Z-ci")
    holder.acquire()
    try:
        assert main(["run", str(params(tmp_path)), "--phases", "30", "--runs", str(tmp_path / "runs")]) == 1
    finally:
        holder.release()
    err = capsys.readouterr().err
    assert f"in use by run 20250101T000000Z-ci (PID {os.getpid()}" in err and "nothing was changed" in err
    assert not (tmp_path / "runs").exists()

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (target / ".k3smig" / "run.lock").write_text(json.dumps({"run_id": "killed-run", "pid": gone.pid}))
    staging = target / "volumes" / "shop" / f".data.k3smig-staging-{gone.pid}-x1y2"  # a killed extraction
    (staging / "half").mkdir(parents=True)
    half_written = target / "manifests" / f".k3smig-tmp-{gone.pid}-0a1b2c3d"
    half_written.parent.mkdir(parents=True)
    half_written.write_text("kind: Confi")
    outcome = runner.run(params(tmp_path), phases="30", runs_root=tmp_path / "runs")
    ledger = json.loads((outcome.run_dir / "run.json").read_text())
    assert outcome.status == "Completed"
    assert f"taken over from run killed-run (PID {gone.pid}), which is gone" in ledger["run_lock"]
    assert not staging.exists() and not half_written.exists()
    assert sorted(ledger["leftovers_removed"]) == sorted([str(half_written), str(staging)])


def test_two_demos_at_once_in_one_clone_do_not_interleave(tmp_path):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    first = k3smig("demo", "--phases", "30-50", "--runs", "runs", env=env, cwd=tmp_path)
    lock = tmp_path / "targets" / "demo" / ".k3smig" / "run.lock"
    wait_for(lambda: lock.is_file() and lock.read_text().strip(), "the first demo to take the lock")
    second = k3smig("demo", "--phases", "30", "--runs", "runs", env=env, cwd=tmp_path)
    _, err = second.communicate(timeout=600)
    assert second.returncode == 1 and "is in use by run" in err and f"PID {first.pid}" in err
    out, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    assert len(list((tmp_path / "runs").iterdir())) == 1
    assert "[IPKernelApp] WARNING" not in err and "without encryption" not in err  # kernels are on IPC, not TCP


def test_a_runs_kernel_listens_on_no_tcp_port_and_its_sockets_go_with_it(short_tmp, monkeypatch):
    """The runner's kernel manager: Unix sockets in the run's 0700 folder, none left after shutdown."""
    monkeypatch.setenv("TMPDIR", str(short_tmp))
    monkeypatch.setattr(tempfile, "tempdir", None)  # gettempdir() reads TMPDIR again
    with runner.kernel_environment("0" * 64):
        runtime = Path(os.environ["JUPYTER_RUNTIME_DIR"])
        km = RunKernelManager(kernel_name="python3")
        run_sync(km.start_kernel)()
        kc = km.client()
        kc.start_channels()
        try:
            run_sync(kc.wait_for_ready)(timeout=120)
            assert km.transport == "ipc"
            assert listening_sockets([km.provisioner.pid]) == set()
            names = sorted(p.name for p in sockets_under(runtime))
            prefix = Path(km.ip).name
            assert names == [f"{prefix}-{n}" for n in (1, 2, 3, 4, 5)] + [f"{prefix}-pipe"]
            assert runtime.stat().st_mode & 0o777 == runtime.parent.stat().st_mode & 0o777 == 0o700
            # output of a forked subprocess still reaches the notebook: ipykernel's pipe, now a Unix socket
            kc.execute("import os\npid = os.fork()\nif pid == 0:\n    print('from the child', flush=True)\n"
                       "    os._exit(0)\nos.waitpid(pid, 0)")
            texts = []
            while True:
                msg = run_sync(kc.get_iopub_msg)(timeout=60)
                if msg["msg_type"] == "stream":
                    texts.append(msg["content"]["text"])
                if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                    break
            assert "from the child" in "".join(texts)
        finally:
            kc.stop_channels()
            run_sync(km.shutdown_kernel)(now=False)
            run_sync(km.cleanup_resources)()
        assert list(runtime.iterdir()) == []  # connection file and every socket removed at shutdown
    assert list(short_tmp.iterdir()) == []


def test_sigkill_mid_run_kernels_die_and_resume_finishes_from_the_ledger(tmp_path, short_tmp):
    """The runner is killed during phase 40: its kernel follows, run.json already holds phase 30."""
    tmpdir = short_tmp
    env = {**os.environ, "TMPDIR": str(tmpdir), "PYTHONWARNINGS": "ignore"}
    proc = k3smig("run", str(params(tmp_path)), "--phases", "30-40", "--runs", "runs", env=env, cwd=tmp_path)
    run_dir = wait_for(lambda: next((tmp_path / "runs").glob("*-ci"), None) if (tmp_path / "runs").exists()
                       else None, "the run folder")
    wait_for(lambda: (run_dir / "40_export_manifests.ipynb").is_file(), "phase 40 to start")
    kernels = wait_for(lambda: children(proc.pid), "the kernel of phase 40")
    kernel_dirs = list(tmpdir.glob(f"k3smig-kernels-{proc.pid}-*"))
    assert kernel_dirs and list(kernel_dirs[0].glob("runtime/kernel-*.json"))
    wait_for(lambda: len(sockets_under(kernel_dirs[0])) >= 6, "the kernel's IPC sockets")
    assert listening_sockets([proc.pid, *children(proc.pid)]) == set()  # the run listens on no TCP port
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    wait_for(lambda: not any(alive(k) for k in kernels), "the kernels of the killed run to exit", timeout=120)

    ledger = json.loads((run_dir / "run.json").read_text())
    assert ledger["status"] == "running" and [p["phase"] for p in ledger["phases"]] == ["30_inventory_source"]
    resumed = subprocess.run([str(K3SMIG), "run", "--resume", str(run_dir)], env=env, cwd=tmp_path,
                             capture_output=True, text=True, timeout=1200, check=False)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert not any(d.exists() for d in kernel_dirs)  # connection files of the killed run removed
    assert list(tmpdir.rglob("kernel-*.json")) == list(tmpdir.glob("tmp*.json")) == sockets_under(tmpdir) == []
    ledger = json.loads((run_dir / "run.json").read_text())
    assert [p["phase"] for p in ledger["phases"]] == ["30_inventory_source", "40_export_manifests"]
    assert ledger["status"] == "Completed" and verify(run_dir) == []


def test_a_stale_phase_result_is_never_taken_for_a_new_attempt(tmp_path):
    snapshot = tmp_path / "snapshot"
    shutil.copytree(BUNDLED_EXAMPLE, snapshot)
    first = runner.run(params(tmp_path, source_snapshot=str(snapshot)), phases="30", runs_root=tmp_path / "runs")
    stale = first.run_dir / "artifacts" / "40_export_manifests" / "phase_result.json"
    stale.parent.mkdir(parents=True)
    stale.write_text(json.dumps({"phase": "40_export_manifests", "status": "Completed",
                                 "summary": {"from": "an earlier attempt"}, "errors": [], "warnings": []}))
    (snapshot / "manifests" / "pgadmin" / "broken.yaml").write_text("kind: [unclosed\n")  # phase 40 now fails
    again = runner.Runner(json.loads((first.run_dir / "run.json").read_text())["parameters"], first.run_dir,
                          resumed=True)
    with runner.kernel_environment(again.run_key), PhaseKernels() as kernels:
        record = again._execute("40_export_manifests", kernels)
    assert record["status"] == "Failed" and record["summary"] == {}
    assert "broken.yaml: line 2, column 1" in " ".join(record["errors"])
    assert json.loads(stale.read_text())["status"] == "Failed"


def test_a_killed_kernel_takes_the_tools_it_started_with_it(tmp_path, short_tmp):
    """A kernel started the way the runner starts it; its parent is SIGKILLed while a tool runs."""
    script = tmp_path / "fake_runner.py"
    script.write_text(
        "import sys, time\n"
        "from jupyter_core.utils import run_sync\n"
        "from k3smig_lib.runbook.kernels import RunKernelManager\n"
        "from k3smig_lib.runbook.runner import kernel_environment\n"
        "with kernel_environment('0' * 64):\n"
        "    km = RunKernelManager(kernel_name='python3')\n"
        "    run_sync(km.start_kernel)()\n"
        "    kc = km.client(); kc.start_channels(); run_sync(kc.wait_for_ready)(timeout=120)\n"
        "    kc.execute('import subprocess; tool = subprocess.Popen([\"sleep\", \"600\"]); print(tool.pid)')\n"
        "    while True:\n"
        "        msg = run_sync(kc.get_iopub_msg)(timeout=120)\n"
        "        if msg['msg_type'] == 'stream':\n"
        "            print(km.provisioner.pid, msg['content']['text'].strip(), flush=True)\n"
        "            break\n"
        "    time.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "TMPDIR": str(short_tmp)})
    kernel, tool = (int(x) for x in proc.stdout.readline().split())
    assert alive(kernel) and alive(tool)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    wait_for(lambda: not alive(kernel) and not alive(tool), "the kernel and its tool to exit", timeout=120)


SPAWN_HOOK = '''
import json, os, sys

def _log(event, args):
    if event == "subprocess.Popen":
        executable, argv, env = args[0], args[1], args[3]
    elif event == "os.posix_spawn":
        executable, argv, env = args[0], args[1], args[2]
    elif event == "os.exec":
        executable, argv, env = args[0], args[1], args[2]
    elif event == "os.system":
        executable, argv, env = "sh", args[0], None
    else:
        return
    env = os.environ if env is None else env
    if isinstance(argv, (bytes, str)):
        argv = [argv]
    with open(os.environ["K3SMIG_SPAWN_LOG"], "a") as fh:
        fh.write(json.dumps({"event": event, "argv": [os.fsdecode(a) for a in (argv or [executable])],
                             "checkpoint_disable": (env.get("CHECKPOINT_DISABLE") or env.get(b"CHECKPOINT_DISABLE"))
                             if hasattr(env, "get") else None}, default=str) + "\\n")

sys.addaudithook(_log)
'''


def test_the_demo_starts_no_process_that_may_phone_home(tmp_path):
    """Every process the demo starts (kernels, tofu, git…) gets CHECKPOINT_DISABLE=1, seen by an audit hook."""
    tofu_dir = Path(__file__).resolve().parents[2] / ".cache" / "infra" / "bin"
    assert (tofu_dir / "tofu").is_file(), f"{tofu_dir}/tofu is missing: run tools/build-infra.sh"
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SPAWN_HOOK)
    log = tmp_path / "spawns.jsonl"
    env = {k: v for k, v in os.environ.items() if k != "CHECKPOINT_DISABLE"}
    env.update(PYTHONPATH=str(hook), K3SMIG_SPAWN_LOG=str(log), PATH=f"{tofu_dir}{os.pathsep}{env['PATH']}")
    done = subprocess.run([str(K3SMIG), "demo", "--phases", "00-10", "--runs", "runs"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=1200, check=False)
    assert done.returncode in (0, 3), done.stderr[-2000:]
    spawns = [json.loads(line) for line in log.read_text().splitlines()]
    assert any(Path(s["argv"][0]).name == "tofu" for s in spawns), "preflight did not probe tofu"
    assert any("k3smig_lib.runbook.kernel" in s["argv"] for s in spawns), "no kernel was seen"
    offenders = [s["argv"][:3] for s in spawns if s["checkpoint_disable"] != "1"]
    assert offenders == []


def test_the_export_report_shows_the_ingress_for_an_openshift_route(tmp_path):
    snapshot = Path(__file__).resolve().parents[1] / "fixtures" / "openshift"
    outcome = runner.run(params(tmp_path, source_snapshot=str(snapshot)), phases="40", runs_root=tmp_path / "runs")
    assert outcome.status == "PartiallyFailed"
    folder = outcome.run_dir / "artifacts" / "40_export_manifests"
    assert "Route/openshift-console/console" in (folder / "routes.csv").read_text()
    ingress = (folder / "suggested" / "openshift-console__console.ingress.yaml").read_text()
    assert "kind: Ingress" in ingress and "console-openshift-console.apps-crc.testing" in ingress
    assert "equivalent Ingress" in (outcome.run_dir / "40_export_manifests.html").read_text()
