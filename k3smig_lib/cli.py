"""``k3smig`` command line: run, resume, verify, demo, clean — the edge where errors become exit codes.

Library errors (``K3sMigError``) are printed as one readable line with their fix; anything else is a
bug and keeps its traceback. Exit codes: 0 Completed, 3 PartiallyFailed, 1 Failed, 2 usage error (an
unknown argument or parameter, a file that does not exist, ``--phases`` selecting nothing).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from k3smig_lib.core.config import NO_PHONE_HOME, PACKAGE_ROOT
from k3smig_lib.errors import K3sMigError, UsageError

DEMO_PARAMS = PACKAGE_ROOT / "parameters" / "demo.yaml"


def _existing(path: str, what: str, fix: str) -> Path:
    """``path`` as given on the command line; a usage error (exit 2) when nothing is there."""
    if not Path(path).exists():
        raise UsageError(f"{what} {path} does not exist", fix=fix)
    return Path(path)


def _cmd_run(args: argparse.Namespace) -> int:
    from k3smig_lib.runbook import runner

    if args.resume:
        _existing(args.resume, "run folder", "give a folder under runs/ (`ls runs`)")
        outcome = runner.resume(Path(args.resume), phases=args.phases)
    else:
        if not args.params:
            raise UsageError("no parameters file given", fix="run `k3smig run parameters/<env>.yaml`")
        overrides = None
        if args.overlay:
            from k3smig_lib.core.config import read_parameters_file

            overrides = read_parameters_file(Path(_existing(args.overlay, "overlay file",
                                                            "give a parameters file with the values to change")))
        outcome = runner.run(Path(args.params), phases=args.phases, runs_root=Path(args.runs), overrides=overrides)
    print(f"run: {outcome.run_dir}")
    print(f"status: {outcome.status}" + (f" (failed in {outcome.failed_phase})" if outcome.failed_phase else ""))
    if outcome.verdict:
        print(f"verdict: {outcome.verdict}")
    print(f"report: {outcome.run_dir / 'index.html'}")
    if outcome.digest:
        print(f"signed: sha256:{outcome.digest} (record {outcome.anchor})")
    return outcome.exit_code


def _cmd_demo(args: argparse.Namespace) -> int:
    args.params, args.resume, args.overlay = str(DEMO_PARAMS), None, None
    return _cmd_run(args)


def _cmd_verify(args: argparse.Namespace) -> int:
    from k3smig_lib.runbook.record import verify_run

    keys = [Path(k) for k in args.key] if args.key else None
    problems = verify_run(_existing(args.run, "run folder", "give a folder under runs/ (`ls runs`)"), keys=keys,
                          against_target=args.against_target)
    if problems:
        print(f"verification FAILED for {args.run}:")
        for p in problems:
            print(f"  - {p}")
        return 1
    where = " and the digest recorded on the target" if args.against_target else ""
    print(f"verified: every file of {args.run} matches run.json and the run record signed by a trusted key{where}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from k3smig_lib.runbook.rerender import rerender

    problems = rerender(Path(args.run), out=Path(args.out) if args.out else None)
    if problems:
        print(f"re-rendered reports of {args.run} differ from the ledger:")
        for p in problems:
            print(f"  - {p}")
        return 1
    print(f"re-rendered every report of {args.run} from its notebooks: byte for byte what the ledger holds"
          + (f" (written to {args.out})" if args.out else ""))
    return 0


def _cmd_rollback(args: argparse.Namespace) -> int:
    from k3smig_lib.phases.catalog import PhaseStatus
    from k3smig_lib.runbook.rollback import rollback

    outcome = rollback(Path(args.run))
    print(f"rollback of {outcome.run_dir.name}: {outcome.status} ({outcome.steps} steps)")
    print(f"report: {outcome.report}")
    return 0 if outcome.status == PhaseStatus.COMPLETED else 1


def _cmd_clean(args: argparse.Namespace) -> int:
    from k3smig_lib.cleancli import clean_export, unsealed_notice

    if args.context:
        return _clean_live(args)
    if args.out is None:
        raise UsageError("k3smig clean needs EXPORT and OUT (or --context CONTEXT and OUT)",
                             fix="k3smig clean EXPORT_FOLDER OUT_FOLDER")
    export = _existing(args.export, "export folder", "give a folder of `kubectl get -o yaml` files")
    result = clean_export(export, Path(args.out), age_recipient=args.age_recipient,
                          storage_class=args.storage_class, ingress_class=args.ingress_class,
                          max_file_bytes=args.max_file_mib << 20)
    print(result.summary)
    if result.unsealed:  # the tree is complete and holds no value in clear: a warning, not a failure
        print(f"k3smig: {unsealed_notice(result.unsealed, export, Path(args.out))}", file=sys.stderr)
    return 0


def _clean_live(args: argparse.Namespace) -> int:
    """``k3smig clean --context CTX OUT``: export the live cluster page by page and clean it."""
    from k3smig_lib.backends.live_source import LiveSource
    from k3smig_lib.cleancli import clean_live, unsealed_notice
    from k3smig_lib.k8s.ref import ClusterRef

    if args.out is not None:
        raise UsageError("with --context, give only the output folder (the export is the live cluster)",
                             fix="k3smig clean --context CONTEXT [--kubeconfig FILE] OUT_FOLDER")
    kubeconfig = args.kubeconfig or os.environ.get("KUBECONFIG", "") or str(Path.home() / ".kube" / "config")
    source = LiveSource(ClusterRef(kubeconfig, args.context, "source"), page_size=args.page_size)
    result = clean_live(source, Path(args.export), snapshot=Path(args.snapshot) if args.snapshot else None,
                        age_recipient=args.age_recipient, storage_class=args.storage_class,
                        ingress_class=args.ingress_class)
    print(result.summary)
    if result.unsealed:  # as for an export folder: a warning naming them and the command that seals them
        print(f"k3smig: {unsealed_notice(result.unsealed, f'--context {args.context}', Path(args.export))}",
              file=sys.stderr)
    return 0


def _cmd_rules(args: argparse.Namespace) -> int:
    from k3smig_lib.core.clean.ruledoc import rules_table
    from k3smig_lib.core.clean.rules import RULES

    unknown = [rule_id for rule_id in args.ids if rule_id not in RULES]
    if unknown:
        raise UsageError(f"unknown rule ID: {', '.join(unknown)}", fix="run `k3smig rules` for the whole table")
    print(rules_table([RULES[rule_id] for rule_id in args.ids] if args.ids else None), end="")
    return 0


SANDBOX_STATE = PACKAGE_ROOT / ".cache" / "sandbox" / "state"


def _cmd_sandbox(args: argparse.Namespace) -> int:
    from k3smig_lib import sandbox

    state = Path(args.state)
    if args.action == "up":
        bin_dir = sandbox.ensure_binaries(log_file=state.parent / "logs" / "build.log")
        st = sandbox.up(state, bin_dir)
        if not args.no_seed:
            seeded = sandbox.seed_source(st.kubeconfig, st.contexts["source"], Path(args.snapshot))
            print(f"seeded source: {len(seeded.created)} objects created, {len(seeded.volumes)} volumes filled")
        if args.network:
            from k3smig_lib.sandbox.network import NETWORK_FILE, network_up

            net = network_up(state)
            print(f"network: DNS {net.parameters['dns_server']} (zone {net.dns.zone}, TSIG key {net.dns.key_name}), "
                  f"Traefik {', '.join(f'{n} https {t.websecure} api {t.api}' for n, t in net.traefik.items())}; "
                  f"run parameters in {state / NETWORK_FILE}")
        st = sandbox.status(state)
    elif args.action == "down":
        stopped = sandbox.down(state)
        print(f"stopped {len(stopped)} processes: {', '.join(stopped) or 'none'}")
        return 0
    else:
        st = sandbox.status(state)
    for p in st.processes:
        rss = f"{p.rss_bytes / 2**20:.0f} MiB" if p.rss_bytes else "-"
        print(f"  {p.name:<34} pid {p.pid:<8} port {p.port or '-':<6} {'up' if p.alive else 'DOWN':<5} {rss}")
    print(f"kubeconfig: {st.kubeconfig} (contexts {', '.join(st.contexts.values())}); "
          f"Kubernetes {st.kubernetes_version}; RSS total {st.total_rss_bytes / 2**20:.0f} MiB")
    return 0 if st.running else 1


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and ``--help``)."""
    parser = argparse.ArgumentParser(prog="k3smig", description="Migrate Kubernetes applications to K3s, "
                                     "with notebooks that leave an audit trail.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the phase notebooks with a parameters file")
    run.add_argument("params", nargs="?", help="parameters/<env>.yaml")
    run.add_argument("--phases", help="phases to run, e.g. 30-60 or 00,40")
    run.add_argument("--resume", metavar="RUN", help="continue RUN from its first phase that did not complete "
                     "(with --phases: add later phases to it, e.g. the cutover)")
    run.add_argument("--runs", default="runs", help="folder that holds run folders (default: runs)")
    run.add_argument("--overlay", metavar="FILE", help="parameters that replace the file's (the sandbox's "
                     "network.yaml)")
    run.set_defaults(func=_cmd_run)
    back = sub.add_parser("rollback", help="undo the cutover of a run: source and DNS back as they were")
    back.add_argument("run", help="runs/<run-id>")
    back.set_defaults(func=_cmd_rollback)
    demo = sub.add_parser("demo", help="run all ten phases on the bundled example cluster")
    demo.add_argument("--phases", help="phases to run")
    demo.add_argument("--runs", default="runs", help="folder that holds run folders")
    demo.set_defaults(func=_cmd_demo)
    ver = sub.add_parser("verify", help="check a run: ledger, folder shape, signature by a trusted key")
    ver.add_argument("run", help="runs/<run-id>")
    ver.add_argument("--key", action="append", help="trusted public key (PEM); repeatable; default: the keys this "
                     "machine knows (its own signing key, ~/.config/k3smig/trusted-keys/*.pem)")
    ver.add_argument("--against-target", action="store_true",
                     help="also compare the run digest with the one recorded on the target")
    ver.set_defaults(func=_cmd_verify)
    rep = sub.add_parser("report", help="re-render a run's HTML reports from its notebooks and check them")
    rep.add_argument("run", help="runs/<run-id>")
    rep.add_argument("--out", help="also write the re-rendered pages into this folder (never into the run)")
    rep.set_defaults(func=_cmd_report)
    clean = sub.add_parser("clean", help="clean an export folder into reviewable manifests plus a rule report")
    clean.add_argument("export", help="folder of kubectl get -o yaml|json output (with --context: OUT)")
    clean.add_argument("out", nargs="?", help="output folder (created)")
    clean.add_argument("--context", default="", help="clean the live cluster of this kubeconfig context instead "
                       "(listed page by page, spooled to disk, read-only)")
    clean.add_argument("--kubeconfig", default="", help="kubeconfig of --context "
                       "(default: $KUBECONFIG, ~/.kube/config)")
    clean.add_argument("--snapshot", default="", help="with --context: also save the raw export as a snapshot "
                       "folder there (holds Secret values, mode 0600)")
    clean.add_argument("--page-size", type=int, default=500, help="with --context: objects per list page")
    clean.add_argument("--age-recipient", default="", help="seal Secrets for this age recipient (SOPS format)")
    clean.add_argument("--storage-class", default="local-path")
    clean.add_argument("--ingress-class", default="nginx")
    clean.add_argument("--max-file-mib", type=int, default=64,
                       help="largest export file read, in MiB (default 64; files stream, so memory stays bounded)")
    clean.set_defaults(func=_cmd_clean)
    rules = sub.add_parser("rules", help="print the cleaning rules (docs/cleaning-rules.md) as a Markdown table")
    rules.add_argument("ids", nargs="*", metavar="ID", help="only these rules, e.g. W1 KEEP4")
    rules.set_defaults(func=_cmd_rules)
    box = sub.add_parser("sandbox", help="local source and K3s-like target clusters on 127.0.0.1 (for tests)")
    box.add_argument("action", choices=["up", "down", "status"])
    box.add_argument("--state", default=str(SANDBOX_STATE), help="state folder (kubeconfig, logs, volumes)")
    box.add_argument("--snapshot", default=str(PACKAGE_ROOT / "examples" / "prod-cluster"),
                     help="export seeded into the source (default: the bundled example)")
    box.add_argument("--no-seed", action="store_true", help="start empty clusters")
    box.add_argument("--network", action="store_true", help="also start the DNS stand (knotd, external-dns on "
                     "both clusters) and Traefik per cluster, for the cutover")
    box.set_defaults(func=_cmd_sandbox)
    return parser


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM ends the run like Ctrl-C: kernels are shut down and the lock released on the way out."""
    raise KeyboardInterrupt(f"signal {signum}")


#: Optional module the ``k3smig`` process never needs: jsonschema (through nbformat, which papermill and
#: the reports use) imports it when present to check the "iri" string format, and building its grammar
#: costs ~1.7 s at import. No notebook schema uses that format; JupyterLab's own process is not affected.
UNNEEDED_MODULES = ("rfc3987_syntax",)


def _skip_unneeded_imports() -> None:
    """Mark :data:`UNNEEDED_MODULES` as absent in this process (only in the console script, not on import)."""
    for name in UNNEEDED_MODULES:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]  # None makes `import name` fail fast


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``k3smig`` console script."""
    args = build_parser().parse_args(argv)
    _skip_unneeded_imports()
    os.environ.update(NO_PHONE_HOME)  # nothing k3smig starts checks for updates (tofu's checkpoint)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    try:
        code: int = args.func(args)
    except K3sMigError as e:
        print(f"k3smig: error: {e}", file=sys.stderr)
        return 2 if isinstance(e, UsageError) else 1
    except KeyboardInterrupt:
        print("k3smig: interrupted; `k3smig run --resume RUN` continues a run", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    raise SystemExit(main())
