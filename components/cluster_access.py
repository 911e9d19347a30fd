"""Access to the cluster for in-cluster resources: the admin kubeconfig, pointed at the endpoint."""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components import certificates
from components.previous_run import this_stack
from components.remote import Ssh, run_script
from kube_ha.certificates import renewal
from kube_ha.elastic.carry import Carried, PodView, carry, read_static_pod_output
from kube_ha.elastic.manifests import (
    CARRIED_ANNOTATION,
    Manifest,
    SecretSpec,
    carried_secret,
    content_sha256,
    kubeconfig_with_server,
    secret_manifest,
    with_command,
    with_pod_annotations,
)
from kube_ha.kubeadm.scripts import (
    read_admin_kubeconfig_script,
    read_files_script,
    read_static_pod_script,
)
from kube_ha.model import Cluster

# Stack outputs the next run reads back (through a reference to this very stack): the copies'
# read generation and expiry, and the Kubernetes provider's identity.
COPIES_OUTPUT = "controlPlaneCopies"
IDENTIFIER_OUTPUT = "clusterIdentifier"


def own_stack_reference() -> pulumi.StackReference:
    """This very stack: the engine answers with the outputs of its last checkpoint (pulumi/
    pulumi pkg/resource/deploy/builtins.go readStackReference -> backend GetStackOutputs),
    none on a stack's first run. Read in preview as in `up`, so both decide alike. A resource
    (not only components/previous_run.py's invoke) so the policy pack sees the record too."""
    return pulumi.StackReference("kube-ha-previous-run", stack_name=this_stack())


def _read_static_pod(component: str, revision: int, generation: str) -> str:
    return read_static_pod_script(component, f"{generation}+{revision}" if revision else generation)


def _read_files_of(spec: SecretSpec, generation: str) -> str:
    return read_files_script(spec.files, generation)


class ClusterAccess(pulumi.ComponentResource):
    """A kubernetes Provider from the bootstrap node's admin.conf (read as a secret, server
    rewritten to the HA endpoint), and the control-plane files the Deployments mount."""

    def __init__(self, name: str, cluster: Cluster, ssh: Ssh, after: pulumi.Resource,
                 secrets: list[SecretSpec], static_pods: Sequence[str] = (),
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("kube-ha:k8s:ClusterAccess", name, None, opts)
        boot = cluster.bootstrap
        rotation = cluster.certificates.rotation
        previous = own_stack_reference()
        generation: pulumi.Output[str] = previous.get_output(COPIES_OUTPUT).apply(
            lambda record: renewal.copy_generation(rotation, record, certificates.now()))
        read = run_script(f"{name}-read-admin-kubeconfig", boot, ssh,
                          generation.apply(read_admin_kubeconfig_script), parent=self,
                          secret_stdout=True, depends_on=[after])
        url = self.url = cluster.access_url
        self.in_cluster_url = cluster.in_cluster_url
        self.kubeconfig: pulumi.Output[str] = pulumi.Output.secret(  # type: ignore[arg-type]
            read.stdout.apply(lambda text: kubeconfig_with_server(text, url)))
        # A stable identifier: an unknown kubeconfig (first preview) must not show the provider,
        # and with it every Kubernetes resource, as replaced; nor may a new endpoint or cluster
        # name (a changed identifier replaces them all). It is fixed by the stack's first run
        # and kept from then on; a stack from before this was recorded gets the value it had.
        first = f"{cluster.name}@{cluster.endpoint.host_port}"
        self.cluster_identifier: pulumi.Output[str] = previous.get_output(IDENTIFIER_OUTPUT).apply(
            lambda kept: kept or first)
        # Secrets are patched, not replaced, when what they hold changes (pulumi-kubernetes
        # provider/pkg/provider/diff.go forceNewProperties: `.data` forces a new Secret unless
        # enableSecretMutable). A replacement deletes and re-creates a Secret the Deployments
        # mount; and a re-read whose content preview cannot know would show as a replacement
        # that `up` may not do. Turning it on updates the provider, never replaces it: the
        # identifier is unchanged (DiffConfig).
        self.provider = k8s.Provider(
            f"{name}-provider", kubeconfig=self.kubeconfig,
            cluster_identifier=self.cluster_identifier, enable_secret_mutable=True,
            opts=pulumi.ResourceOptions(parent=self))

        # One read per Secret, so switching one Deployment off or on leaves the others' reads
        # (and what preview knows of their content) alone. An alias moves the single read
        # earlier versions made onto the first; it has no delete, so the rename runs nothing.
        self._files: dict[str, pulumi.Output[dict[str, str]]] = {}
        for i, spec in enumerate(secrets):
            read_files = run_script(
                f"{name}-read-{spec.name.removeprefix('kube-ha-')}", boot, ssh,
                generation.apply(functools.partial(_read_files_of, spec)),
                parent=self, secret_stdout=True, depends_on=[after],
                aliases=[pulumi.Alias(name=f"{name}-read-control-plane-files")] if i == 0 else ())
            self._files[spec.name] = pulumi.Output.secret(  # type: ignore[assignment]
                read_files.stdout.apply(json.loads))
        # The static pods the Deployments copy (kube_ha.elastic.carry), one read each: the
        # copy generation re-reads them with the files, staticPodsRevision when the operator
        # changed them.
        revision = cluster.static_pods_revision
        self._static: dict[str, pulumi.Output[tuple[str, dict[str, str]]]] = {}
        for component in static_pods:
            read_pod = run_script(
                f"{name}-read-static-{component}", boot, ssh,
                generation.apply(functools.partial(_read_static_pod, component, revision)),
                parent=self, secret_stdout=True, depends_on=[after])
            self._static[component] = pulumi.Output.secret(  # type: ignore[assignment]
                read_pod.stdout.apply(read_static_pod_output))
        self.files: pulumi.Output[dict[str, str]] = pulumi.Output.all(
            *self._files.values()).apply(lambda parts: {k: v for p in parts for k, v in p.items()})

        def record(values: list[Any]) -> dict[str, Any]:
            gen, admin, copied = values
            admin_b64 = base64.b64encode(admin.encode()).decode()
            return {"generation": gen,
                    "expiry": renewal.expiry_of_copies({"admin.conf": admin_b64, **copied})}

        # Dates, not secrets: what the next run decides re-reads by, and what an operator
        # watches (the policy pack's certificate-expiry check reads it too).
        self.copies: pulumi.Output[dict[str, Any]] = pulumi.Output.unsecret(  # type: ignore[assignment]
            pulumi.Output.all(generation, read.stdout, self.files).apply(record))
        self.register_outputs({})

    def _data(self, spec: SecretSpec) -> pulumi.Output[dict[str, str]]:
        """The Secret's data from the bootstrap node's files, kubeconfigs re-pointed at the
        endpoint. A Pulumi secret."""
        url = self.in_cluster_url

        def pick(files: dict[str, str]) -> dict[str, str]:
            data = {key: files[key] for key in spec.files}
            for key in spec.kubeconfigs:
                text = base64.b64decode(data[key]).decode()
                data[key] = base64.b64encode(kubeconfig_with_server(text, url).encode()).decode()
            return data

        return pulumi.Output.secret(self._files[spec.name].apply(pick))  # type: ignore[arg-type]

    def secret(self, resource_name: str, spec: SecretSpec, opts: pulumi.ResourceOptions
               ) -> k8s.core.v1.Secret:
        """The Secret `spec` describes, filled from the bootstrap node's files."""
        shape = secret_manifest(spec.name, [])
        return k8s.core.v1.Secret(resource_name, metadata=shape["metadata"], type=shape["type"],
                                  data=self._data(spec), opts=opts)

    def carried(self, view: PodView) -> tuple[pulumi.Output[list[str]], pulumi.Output[dict[str, str]]]:
        """The pod's flags, carried from its static pod (plain: flags hold paths and options),
        and the carried files Secret's data (a Pulumi secret)."""
        both: pulumi.Output[Carried] = self._static[view.component].apply(
            lambda read: carry(view, *read))
        flags: pulumi.Output[list[str]] = pulumi.Output.unsecret(both.apply(lambda c: c.flags))
        files: pulumi.Output[dict[str, str]] = both.apply(lambda c: c.files)
        return flags, pulumi.Output.secret(files)  # type: ignore[arg-type]

    def carry_into(self, resource_name: str, app: str, view: PodView, spec: Manifest,
                   opts: pulumi.ResourceOptions) -> tuple[Manifest, k8s.core.v1.Secret]:
        """`spec` running its static pod's flags, and the Secret of the files they name
        (its digest on the pod template: the component reads them only at start)."""
        flags, files = self.carried(view)
        shape = secret_manifest(carried_secret(app), [])
        stored = k8s.core.v1.Secret(resource_name, metadata=shape["metadata"], type=shape["type"],
                                    data=files, opts=opts)
        digest = pulumi.Output.unsecret(files.apply(content_sha256))
        binary = spec["template"]["spec"]["containers"][0]["command"][0]
        spec = with_command(spec, flags.apply(lambda f: [binary, *f]))
        return with_pod_annotations(spec, {CARRIED_ANNOTATION: digest}), stored

    def checksum(self, spec: SecretSpec) -> pulumi.Output[str]:
        """SHA-256 of what the Secret holds: as a pod-template annotation it restarts the pods
        that mount it when the content changes (a Secret volume's files change in place, but
        these processes read them only at start). Not secret: a digest."""
        return pulumi.Output.unsecret(self._data(spec).apply(content_sha256))  # type: ignore[arg-type]
