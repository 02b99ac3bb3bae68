"""devstack.template reads CloudFormation YAML, turning short tags into their long forms."""

from __future__ import annotations

import pytest

from devstack.template import TemplateError, loads_template

TEXT = """
Conditions:
  HasEmail: !Not [!Equals [!Ref AlarmEmail, ""]]
Resources:
  Queue:
    Type: AWS::SQS::Queue
    Properties:
      RedrivePolicy:
        deadLetterTargetArn: !GetAtt DeadLetterQueue.Arn
      Tags:
        - Key: url
          Value: !Sub "https://${Api}.execute-api.${AWS::Region}.amazonaws.com/Prod"
        - Key: joined
          Value: !Join [",", [!Ref A, !GetAtt [B, Attr.With.Dots]]]
        - Key: chosen
          Value: !If [HasEmail, !Select [0, !Split [",", !Ref List]], !Ref AWS::NoValue]
  Topic:
    Type: AWS::SNS::Topic
    Condition: HasEmail
"""


def test_short_tags_become_long_forms():
    template = loads_template(TEXT)

    assert template["Conditions"]["HasEmail"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]}
    props = template["Resources"]["Queue"]["Properties"]
    assert props["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
    tags = {tag["Key"]: tag["Value"] for tag in props["Tags"]}
    assert tags["url"] == {"Fn::Sub": "https://${Api}.execute-api.${AWS::Region}.amazonaws.com/Prod"}
    assert tags["joined"] == {"Fn::Join": [",", [{"Ref": "A"}, {"Fn::GetAtt": ["B", "Attr.With.Dots"]}]]}
    assert tags["chosen"] == {
        "Fn::If": [
            "HasEmail",
            {"Fn::Select": [0, {"Fn::Split": [",", {"Ref": "List"}]}]},
            {"Ref": "AWS::NoValue"},
        ]
    }
    assert template["Resources"]["Topic"]["Condition"] == "HasEmail"


def test_dotted_get_att_splits_at_the_first_dot_only():
    template = loads_template("Resources:\n  X:\n    Value: !GetAtt Table.StreamSpecification.Arn\n")
    assert template["Resources"]["X"]["Value"] == {"Fn::GetAtt": ["Table", "StreamSpecification.Arn"]}


def test_get_att_without_attribute_is_refused():
    with pytest.raises(TemplateError, match=r"Resource\.Attribute"):
        loads_template("Resources:\n  X:\n    Value: !GetAtt Table\n")


@pytest.mark.parametrize("text", ["Resources: [", "just a string", "Parameters: {}\n"])
def test_not_a_template_is_refused(text: str):
    with pytest.raises(TemplateError):
        loads_template(text)


def test_unknown_tags_are_refused_rather_than_guessed():
    with pytest.raises(TemplateError, match="not valid YAML"):
        loads_template("Resources:\n  X:\n    Value: !Bogus 1\n")
