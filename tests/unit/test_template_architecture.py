"""The ``Architecture`` parameter: x86_64 by default, arm64 (Graviton) on request, one for all.

Every function and the shared layer run on the architecture it names, read from what
CloudFormation gets (SAM's translator's output, resolved for one set of parameters). The
layer's wheels hold native code (cryptography, cffi), so there is one layer per architecture:
``sam build`` reads none of the parameters a deploy is given (``sam deploy --guided`` saves
them for deploys only) and tells a makefile build no architecture, so every build makes both
(``SharedLayer``, ``SharedLayerArm64``) and the parameter picks the one deployed. The platforms
each layer's build hands pip are read from ``make -n``, run as sam runs it.
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
from templates import parameter_resolver

from devstack.artifact import read_functions
from devstack.iam import sam_transform

ROOT = Path(__file__).resolve().parents[2]
ARCHITECTURES = ("x86_64", "arm64")
# pip's platform tags for each architecture's wheels.
MACHINE = {"x86_64": "x86_64", "arm64": "aarch64"}
LAYER = "AWS::Serverless::LayerVersion"

Template = dict[str, Any]


def deployed(template: Template, parameters: Mapping[str, str] | None = None) -> dict[str, Any]:
    """What CloudFormation creates for ``parameters``: each function's ``Architectures`` and
    ``Layers``, each layer's ``CompatibleArchitectures`` (``None`` when unset: Lambda's default,
    x86_64); a resource whose condition is false is not created."""
    transformed = sam_transform(template)
    resolve = parameter_resolver(transformed, parameters)
    found: dict[str, Any] = {}
    for name, resource in transformed["Resources"].items():
        if "Condition" in resource and not resolve.condition(resource["Condition"]):
            continue
        props = resolve.resolve(resource["Properties"])
        if resource["Type"] == "AWS::Lambda::Function":
            found[name] = {"Architectures": props.get("Architectures"), "Layers": props.get("Layers")}
        elif resource["Type"] == "AWS::Lambda::LayerVersion":
            found[name] = {"CompatibleArchitectures": props.get("CompatibleArchitectures")}
    return found


def deployed_layer(created: Mapping[str, Any]) -> str:
    """The one layer ``deployed`` found."""
    [layer] = [name for name, found in created.items() if "CompatibleArchitectures" in found]
    return layer


def others(created: Mapping[str, Any], layer: str, architecture: str) -> dict[str, Any]:
    """The created functions not on ``architecture`` with ``layer`` alone."""
    expected = {"Architectures": [architecture], "Layers": [{"Ref": layer}]}
    return {name: found for name, found in created.items() if name != layer and found != expected}


def layers(template: Template) -> dict[str, Any]:
    return {name: res for name, res in template["Resources"].items() if res["Type"] == LAYER}


def pip_platforms(layer: str, tmp_path: Path, template: Template) -> list[str]:
    """The ``--platform`` tags ``layer``'s build passes pip, from ``make -n`` run as sam runs it:
    the Makefile of its ``ContentUri``, target ``build-<logical id>``, ARTIFACTS_DIR set."""
    makefile = ROOT / template["Resources"][layer]["Properties"]["ContentUri"] / "Makefile"
    out = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-n",
            "--makefile",
            str(makefile),
            f"build-{layer}",
            f"ARTIFACTS_DIR={tmp_path / 'artifacts'}",
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
def test_every_function_runs_on_the_chosen_architecture_with_the_one_layer_built_for_it(
    template: Template, architecture: str
) -> None:
    # Ingress=http creates every function (the HTTP API's authorizer too).
    created = deployed(template, {"Architecture": architecture, "Ingress": "http"})

    layer = deployed_layer(created)
    assert created[layer] == {"CompatibleArchitectures": [architecture]}
    functions = {
        name for name, res in template["Resources"].items() if res["Type"] == "AWS::Serverless::Function"
    }
    assert functions <= set(created)
    assert not others(created, layer, architecture)


def test_the_default_deploys_x86_64_and_its_layer_keeps_its_name(template: Template) -> None:
    created = deployed(template)

    layer = deployed_layer(created)
    # SharedLayer (plus the hash SAM's translator appends) is the x86_64 layer, as before arm64
    # was offered: a stack deployed then keeps it.
    assert re.fullmatch(r"SharedLayer[0-9a-f]{10}", layer), layer
    assert created[layer] == {"CompatibleArchitectures": ["x86_64"]}
    assert not others(created, layer, "x86_64")


def test_a_function_pinned_to_one_architecture_or_layer_is_caught(template: Template) -> None:
    broken = copy.deepcopy(template)
    broken["Resources"]["DispatchFunction"]["Properties"]["Architectures"] = ["x86_64"]
    broken["Resources"]["IngestFunction"]["Properties"]["Layers"] = [{"Ref": "SharedLayer"}]

    created = deployed(broken, {"Architecture": "arm64"})

    layer = deployed_layer(created)
    caught = others(created, layer, "arm64")
    assert caught["DispatchFunction"] == {"Architectures": ["x86_64"], "Layers": [{"Ref": layer}]}
    # SAM appends a function's own layers to Globals': the x86_64 layer too, never created.
    assert caught["IngestFunction"]["Layers"][0] == {"Ref": layer}
    assert len(caught["IngestFunction"]["Layers"]) == 2
    assert set(caught) == {"DispatchFunction", "IngestFunction"}


def test_every_build_makes_one_layer_per_architecture_whatever_the_parameters(template: Template) -> None:
    built = layers(template)

    assert sorted(
        arch for res in built.values() for arch in res["Properties"]["CompatibleArchitectures"]
    ) == sorted(ARCHITECTURES)
    for name, res in built.items():
        # Literals only: sam build sees the parameters' defaults, not what a deploy is given, so
        # a layer whose build followed a parameter would ship the default's wheels.
        assert not re.search(r'"(Ref|Fn::If|Condition)"', json.dumps([res["Properties"], res["Metadata"]])), (
            name
        )
        assert res["Metadata"]["BuildMethod"] == "makefile", name
        # sam checks it against CompatibleArchitectures (a warning when it is not there).
        assert [res["Metadata"]["BuildArchitecture"]] == res["Properties"]["CompatibleArchitectures"], name
        assert "Condition" in res, f"{name} is deployed whatever the Architecture"


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_each_layer_build_installs_wheels_of_its_architecture_only(
    template: Template, architecture: str, tmp_path: Path
) -> None:
    [layer] = [
        name
        for name, res in layers(template).items()
        if res["Properties"]["CompatibleArchitectures"] == [architecture]
    ]

    platforms = pip_platforms(layer, tmp_path, template)

    assert platforms, "the build names no platform: pip would take this machine's"
    machine = MACHINE[architecture]
    assert all(re.fullmatch(rf"manylinux(1|2010|2014|_2_\d+)_{machine}", tag) for tag in platforms), platforms
    # Lambda's python3.12 runtime has glibc 2.34 on either architecture: wheels up to 2_34.
    assert platforms[0] == f"manylinux_2_34_{machine}"


def test_a_layer_build_ignores_platforms_in_the_environment(
    template: Template, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # sam runs make with its own environment: a stray variable must not change a layer.
    monkeypatch.setenv("PLATFORMS", "manylinux_2_34_aarch64")

    platforms = pip_platforms("SharedLayer", tmp_path, template)

    assert platforms
    assert all(tag.endswith("_x86_64") for tag in platforms), platforms


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_the_build_check_imports_the_layer_a_deploy_would_ship(
    template: Template, architecture: str, tmp_path: Path
) -> None:
    # The built template as sam build writes it: each code folder named by its logical id.
    built = copy.deepcopy(template)
    for name, res in built["Resources"].items():
        for key in ("CodeUri", "ContentUri"):
            if key in res.get("Properties", {}):
                res["Properties"][key] = name
                (tmp_path / name).mkdir()
    (tmp_path / "template.yaml").write_text(json.dumps(built))

    functions = read_functions(tmp_path, parameters={"Architecture": architecture})

    assert functions
    expected = "SharedLayerArm64" if architecture == "arm64" else "SharedLayer"
    assert {function.layer_dirs for function in functions} == {(tmp_path / expected,)}
