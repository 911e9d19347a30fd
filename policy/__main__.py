"""The kube-ha policy pack: `pulumi preview --policy-pack policy`."""

from kube_ha_policies import POLICIES
from pulumi_policy import EnforcementLevel, PolicyPack

PolicyPack(name="kube-ha", enforcement_level=EnforcementLevel.MANDATORY, policies=POLICIES)
