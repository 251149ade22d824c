"""canary doctor: is everything ready for seeding and watching?"""

from __future__ import annotations

import os

import click

from canary.cli.common import AppContext, console, handle_errors, print_json

MARK = {"ok": "[green]ok  [/green]", "warn": "[yellow]warn[/yellow]", "fail": "[red]FIX [/red]"}


def default_lang() -> str:
    """Japanese where the locale is Japanese, else English."""
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(name, "")
        if value:
            return "ja" if value.lower().startswith("ja") else "en"
    return "en"


@click.command("doctor")
@click.option(
    "--lang",
    type=click.Choice(["ja", "en"]),
    help="Language of the findings (default: from LANG).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@click.option(
    "--timeout",
    type=float,
    default=2.0,
    show_default=True,
    help="Seconds to wait for each listener.",
)
@click.pass_obj
@handle_errors
def doctor_cmd(app: AppContext, lang: str | None, as_json: bool, timeout: float) -> None:
    """Check the registry, pools, domains, listeners and monitors; say what to fix.

    Exit 0 when everything a steward needs is in order, 1 when something must be fixed
    (each such line starts with FIX).
    """
    from canary.doctor import diagnose

    report = diagnose(app.settings, timeout=timeout)
    if as_json:
        print_json(report.as_json())
    else:
        language = lang or default_lang()
        out = console()
        for f in report.findings:
            out.print(f"{MARK[f.status]} {f.check:<10} {f.text(language)}", markup=True)
        if report.healthy:
            out.print("健全です。" if language == "ja" else "All is well.")
        else:
            bad = sum(1 for f in report.findings if f.status == "fail")
            out.print(
                f"{bad} 件の要修正があります。" if language == "ja" else f"{bad} thing(s) to fix."
            )
    if not report.healthy:
        click.get_current_context().exit(1)
