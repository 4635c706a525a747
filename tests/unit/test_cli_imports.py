"""The operator's commands do not load the simulator: `mq-cutover approve`, `approvers`,
`publish-metrics`, `schema`, `start`, `status` or `report` on an operator's host need neither
moto nor jsonata (issue 13 goes further: a package that installs without them)."""

from __future__ import annotations

import subprocess
import sys


def test_the_operator_commands_never_import_the_simulator() -> None:
    probe = (
        "import sys, contextlib, io\n"
        "from mq_cutover_cli.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert main(['schema']) == 0\n"
        "for argv in (['approve', '--help'], ['approvers', 'list', '--help'],"
        " ['publish-metrics', '--help'], ['start', '--help'], ['status', '--help'],"
        " ['report', '--help']):\n"
        "    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "        main(argv)\n"
        # start, status and report dispatched for real (a session that has no credentials),
        # and every module they load on the way, lazily or not.
        "import botocore.exceptions\n"
        "class NoCredentials:\n"
        "    region_name = 'us-east-1'\n"
        "    def client(self, service):\n"
        "        raise botocore.exceptions.NoCredentialsError()\n"
        "for argv in (['start', '--plan', 'p.json', '--stack', 's'], ['status', 'm', '--stack',"
        " 's'], ['report', 'm', '--stack', 's', '--html', 'r.html']):\n"
        "    with contextlib.redirect_stderr(io.StringIO()):\n"
        "        assert main(argv, session=NoCredentials()) in (2, 3), argv\n"
        "import mq_cutover_cli.operate, mq_cutover_cli.report_page, mq_cutover_cli.api\n"
        "import mq_cutover_cli.preflight_cmd\n"
        "loaded = [m for m in ('moto', 'jsonata', 'mq_cutover_cli.harness',"
        " 'mq_cutover_cli.simulate') if m in sys.modules]\n"
        "print(','.join(loaded))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "", done.stdout
    # And the probe can see an import when one happens (the check can fail).
    seen = subprocess.run(
        [sys.executable, "-c", "import sys, mq_cutover_cli.simulate; print('moto' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert seen.stdout.strip() == "True"
