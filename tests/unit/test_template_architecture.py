"""The ``Architecture`` parameter: x86_64 by default, arm64 (Graviton) on request, one for all.

Every function and the shared layer run on the architecture it names, read from what
CloudFormation gets (SAM's translator's output, resolved for one set of parameters). The
layer's wheels hold native code (cryptography, cffi), so its build must pick wheels of that
architecture: ``sam build`` tells a makefile build no architecture, so the template chooses
the Makefile it runs (the layer's Metadata ``ContextPath``), and the platforms that Makefile
hands pip are read from ``make -n``, as sam would run it.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from devstack.iam import sam_transform
from devstack.intrinsics import NO_VALUE, Resolver

ROOT = Path(__file__).resolve().parents[2]
ARCHITECTURES = ("x86_64", "arm64")
# pip's platform tags for each architecture's wheels.
MACHINE = {"x86_64": "x86_64", "arm64": "aarch64"}

Template = dict[str, Any]


def resolver(template: Template, parameters: Mapping[str, str] | None = None) -> Resolver:
    """Resolves ``Ref``s of parameters (their defaults unless given) and ``Fn::If``s; other
    references are left as they are."""
    values = {name: str(spec.get("Default", "")) for name, spec in template["Parameters"].items()}
    values.update(parameters or {})

    def ref(name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        return values.get(name, {"Ref": name})

    return Resolver(
        ref=ref,
        get_att=lambda logical_id, attribute: {"Fn::GetAtt": [logical_id, attribute]},
        conditions=template.get("Conditions", {}),
    )


def deployed_architectures(template: Template, parameters: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Each deployed function's ``Architectures`` and each layer's ``CompatibleArchitectures``
    (``None`` when unset: Lambda's default, x86_64), as CloudFormation gets them."""
    transformed = sam_transform(template)
    resolve = resolver(transformed, parameters).resolve
    found: dict[str, Any] = {}
    for name, resource in transformed["Resources"].items():
        key = {
            "AWS::Lambda::Function": "Architectures",
            "AWS::Lambda::LayerVersion": "CompatibleArchitectures",
        }.get(resource["Type"])
        if key:
            found[name] = resolve(resource["Properties"].get(key))
    return found


def elsewhere(deployed: Mapping[str, Any], architecture: str) -> dict[str, Any]:
    """What ``deployed_architectures`` found not on ``architecture`` alone."""
    return {name: found for name, found in deployed.items() if found != [architecture]}


def layer_makefile(template: Template, parameters: Mapping[str, str] | None = None) -> Path:
    """The Makefile ``sam build`` runs for the layer: ``ContextPath``'s, else ``ContentUri``'s."""
    layer = template["Resources"]["SharedLayer"]
    metadata = resolver(template, parameters).resolve(layer["Metadata"])
    assert metadata["BuildMethod"] == "makefile"
    folder = metadata.get("ContextPath", layer["Properties"]["ContentUri"])
    return ROOT / folder / "Makefile"


def pip_platforms(makefile: Path, tmp_path: Path, *variables: str) -> list[str]:
    """The ``--platform`` tags the layer's build passes pip, from ``make -n`` run as sam runs
    it (``--makefile`` and the target, in a scratch folder, ARTIFACTS_DIR set)."""
    out = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-n",
            "--makefile",
            str(makefile),
            "build-SharedLayer",
            f"ARTIFACTS_DIR={tmp_path / 'artifacts'}",
            *variables,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return re.findall(r"--platform (\S+)", out)


def test_the_parameter_defaults_to_x86_64_and_offers_arm64(template: Template) -> None:
    parameter = template["Parameters"]["Architecture"]

    assert parameter["Type"] == "String"
    assert parameter["Default"] == "x86_64"
    assert sorted(parameter["AllowedValues"]) == sorted(ARCHITECTURES)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_every_function_and_the_layer_run_on_the_chosen_architecture(
    template: Template, architecture: str
) -> None:
    deployed = deployed_architectures(template, {"Architecture": architecture})

    functions = {
        name for name, res in template["Resources"].items() if res["Type"] == "AWS::Serverless::Function"
    }
    assert functions <= set(deployed)
    assert [name for name in deployed if name.startswith("SharedLayer")], "no layer deployed"
    assert elsewhere(deployed, architecture) == {}


def test_the_default_deploys_x86_64(template: Template) -> None:
    deployed = deployed_architectures(template)

    assert elsewhere(deployed, "x86_64") == {}


def test_a_function_pinned_to_one_architecture_is_caught(template: Template) -> None:
    broken = copy.deepcopy(template)
    broken["Resources"]["DispatchFunction"]["Properties"]["Architectures"] = ["x86_64"]

    deployed = deployed_architectures(broken, {"Architecture": "arm64"})

    assert elsewhere(deployed, "arm64") == {"DispatchFunction": ["x86_64"]}


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_sam_builds_the_layer_for_the_chosen_architecture(template: Template, architecture: str) -> None:
    layer = template["Resources"]["SharedLayer"]
    metadata = resolver(template, {"Architecture": architecture}).resolve(layer["Metadata"])

    # sam matches BuildArchitecture against CompatibleArchitectures (a warning if it is not there).
    assert metadata["BuildArchitecture"] == architecture
    # sam build's resolver leaves an Fn::If with AWS::NoValue unresolved (and then fails on the
    # dict as a path): every branch of the layer's Metadata must be a value.
    assert "AWS::NoValue" not in json.dumps(layer["Metadata"])
    assert layer_makefile(template, {"Architecture": architecture}).is_file()


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_the_layer_build_installs_wheels_of_the_chosen_architecture_only(
    template: Template, architecture: str, tmp_path: Path
) -> None:
    platforms = pip_platforms(layer_makefile(template, {"Architecture": architecture}), tmp_path)

    assert platforms, "the build names no platform: pip would take this machine's"
    machine = MACHINE[architecture]
    assert all(re.fullmatch(rf"manylinux(1|2010|2014|_2_\d+)_{machine}", tag) for tag in platforms), platforms
    # Lambda's python3.12 runtime has glibc 2.34 on either architecture: wheels up to 2_34.
    assert platforms[0] == f"manylinux_2_34_{machine}"


def test_the_default_layer_ignores_an_architecture_in_the_environment(
    template: Template, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # sam runs make with its own environment: a stray variable must not change the default layer.
    monkeypatch.setenv("LAYER_ARCHITECTURE", "arm64")

    platforms = pip_platforms(layer_makefile(template), tmp_path)

    assert platforms
    assert all(tag.endswith("_x86_64") for tag in platforms), platforms


def test_an_unknown_layer_architecture_fails_the_build(template: Template, tmp_path: Path) -> None:
    result = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "--makefile",
            str(layer_makefile(template)),
            "build-SharedLayer",
            f"ARTIFACTS_DIR={tmp_path / 'artifacts'}",
            "LAYER_PYTHON=python3",
            "LAYER_ARCHITECTURE=s390x",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode != 0
    assert "unknown LAYER_ARCHITECTURE 's390x'" in result.stdout + result.stderr
    assert not (tmp_path / "artifacts").exists()
