package test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/thind-storage/thind/csi"
)

// volumeSnapshotClass is snapshot.storage.k8s.io/v1 VolumeSnapshotClass,
// whose Go type lives in external-snapshotter's client, not k8s.io/api;
// its fields as the CRD defines them.
type volumeSnapshotClass struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Driver            string            `json:"driver"`
	DeletionPolicy    string            `json:"deletionPolicy"`
	Parameters        map[string]string `json:"parameters,omitempty"`
}

// snapshotMetadataService is cbt.storage.k8s.io/v1alpha1
// SnapshotMetadataService, the object external-snapshot-metadata
// publishes its address by; its Go type lives in that project, not
// k8s.io/api. Its fields as the CRD defines them.
type snapshotMetadataService struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              struct {
		Address  string `json:"address"`
		CACert   []byte `json:"caCert"`
		Audience string `json:"audience"`
	} `json:"spec"`
}

// manifests are deploy/kubernetes's objects, decoded strictly.
type manifests struct {
	namespaces      []corev1.Namespace
	serviceAccounts []corev1.ServiceAccount
	clusterRoles    []rbacv1.ClusterRole
	clusterBindings []rbacv1.ClusterRoleBinding
	roles           []rbacv1.Role
	bindings        []rbacv1.RoleBinding
	drivers         []storagev1.CSIDriver
	classes         []storagev1.StorageClass
	snapClasses     []volumeSnapshotClass
	services        []corev1.Service
	metadataSvcs    []snapshotMetadataService
	deployments     []appsv1.Deployment
	daemonSets      []appsv1.DaemonSet
}

// decodeInto decodes one document strictly (an unknown or misspelt field
// is an error) and appends it to list.
func decodeInto[T any](doc []byte, list *[]T) error {
	var o T
	if err := yaml.UnmarshalStrict(doc, &o); err != nil {
		return err
	}
	*list = append(*list, o)
	return nil
}

func loadManifests(t *testing.T) *manifests {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot, "deploy", "kubernetes", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	m := &manifests{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range bytes.Split(data, []byte("\n---\n")) {
			where := fmt.Sprintf("%s document %d", filepath.Base(f), i+1)
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal(doc, &tm); err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			switch tm.APIVersion + " " + tm.Kind {
			case "v1 Namespace":
				err = decodeInto(doc, &m.namespaces)
			case "v1 Service":
				err = decodeInto(doc, &m.services)
			case "cbt.storage.k8s.io/v1alpha1 SnapshotMetadataService":
				err = decodeInto(doc, &m.metadataSvcs)
			case "v1 ServiceAccount":
				err = decodeInto(doc, &m.serviceAccounts)
			case "rbac.authorization.k8s.io/v1 ClusterRole":
				err = decodeInto(doc, &m.clusterRoles)
			case "rbac.authorization.k8s.io/v1 ClusterRoleBinding":
				err = decodeInto(doc, &m.clusterBindings)
			case "rbac.authorization.k8s.io/v1 Role":
				err = decodeInto(doc, &m.roles)
			case "rbac.authorization.k8s.io/v1 RoleBinding":
				err = decodeInto(doc, &m.bindings)
			case "storage.k8s.io/v1 CSIDriver":
				err = decodeInto(doc, &m.drivers)
			case "storage.k8s.io/v1 StorageClass":
				err = decodeInto(doc, &m.classes)
			case "snapshot.storage.k8s.io/v1 VolumeSnapshotClass":
				err = decodeInto(doc, &m.snapClasses)
			case "apps/v1 Deployment":
				err = decodeInto(doc, &m.deployments)
			case "apps/v1 DaemonSet":
				err = decodeInto(doc, &m.daemonSets)
			default:
				t.Fatalf("%s: kind %q of %q has no decoder in this test", where, tm.Kind, tm.APIVersion)
			}
			if err != nil {
				t.Fatalf("%s (%s): %v", where, tm.Kind, err)
			}
		}
	}
	return m
}

// TestManifestsDecodeStrictly: a misspelt field fails the decoder the
// manifests test relies on.
func TestManifestsDecodeStrictly(t *testing.T) {
	var ds []appsv1.DaemonSet
	err := decodeInto([]byte("apiVersion: apps/v1\nkind: DaemonSet\nspec:\n  template:\n    spec:\n      hostNetwrok: true\n"), &ds)
	if err == nil || !strings.Contains(err.Error(), "hostNetwrok") {
		t.Fatalf("a misspelt field decoded: %v", err)
	}
}

// container returns the pod's container named name.
func container(t *testing.T, pod corev1.PodSpec, name string) corev1.Container {
	t.Helper()
	for _, c := range pod.Containers {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no container %q", name)
	return corev1.Container{}
}

// flag returns the value of --name=value in args.
func flag(args []string, name string) (string, bool) {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// mountOf returns where c mounts the volume that holds path, and that
// volume's name.
func mountOf(c corev1.Container, path string) (volume, mountPath string) {
	for _, m := range c.VolumeMounts {
		if path == m.MountPath || strings.HasPrefix(path, m.MountPath+"/") {
			return m.Name, m.MountPath
		}
	}
	return "", ""
}

func hostPath(pod corev1.PodSpec, volume string) string {
	for _, v := range pod.Volumes {
		if v.Name == volume && v.HostPath != nil {
			return v.HostPath.Path
		}
	}
	return ""
}

// checkPlugin checks the thind container of a pod: its mode, that its
// node id is the node's name (so the topology value is what the scheduler
// matches), and that every sidecar dials its socket through the same
// volume. It returns the socket's volume.
func checkPlugin(t *testing.T, what string, pod corev1.PodSpec, mode csi.Mode, sidecars ...string) string {
	t.Helper()
	thind := container(t, pod, "thind-csi")
	if len(thind.Args) == 0 || thind.Args[0] != "csi" {
		t.Errorf("%s: thind-csi args %v: want the csi subcommand", what, thind.Args)
	}
	if m, _ := flag(thind.Args, "mode"); m != string(mode) {
		t.Errorf("%s: --mode=%q, want %q", what, m, mode)
	}
	if id, _ := flag(thind.Args, "node-id"); id != "$(NODE_ID)" {
		t.Errorf("%s: --node-id=%q, want $(NODE_ID)", what, id)
	}
	nodeName := false
	for _, e := range thind.Env {
		if e.Name == "NODE_ID" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "spec.nodeName" {
			nodeName = true
		}
	}
	if !nodeName {
		t.Errorf("%s: NODE_ID is not the node's name (spec.nodeName)", what)
	}
	if dir, _ := flag(thind.Args, "data-dir"); dir == "" || hostPath(pod, func() string { v, _ := mountOf(thind, dir+"/control.sock"); return v }()) != dir {
		t.Errorf("%s: --data-dir=%q is not the host's pool directory mounted at the same path", what, dir)
	}
	ep, _ := flag(thind.Args, "endpoint")
	sock, ok := strings.CutPrefix(ep, "unix://")
	if !ok {
		t.Fatalf("%s: --endpoint=%q, want unix:///...", what, ep)
	}
	vol, mnt := mountOf(thind, sock)
	if vol == "" {
		t.Fatalf("%s: the socket %s is on no volume of thind-csi", what, sock)
	}
	for _, name := range sidecars {
		c := container(t, pod, name)
		addr, _ := flag(c.Args, "csi-address")
		v, m := mountOf(c, addr)
		if v != vol || strings.TrimPrefix(addr, m) != strings.TrimPrefix(sock, mnt) {
			t.Errorf("%s: %s dials %s on volume %q, but thind-csi serves %s on volume %q", what, name, addr, v, sock, vol)
		}
	}
	return vol
}

func TestKubernetesManifestsAgree(t *testing.T) {
	m := loadManifests(t)
	if len(m.drivers) != 1 || len(m.classes) != 1 || len(m.snapClasses) != 1 || len(m.deployments) != 1 || len(m.daemonSets) != 1 {
		t.Fatalf("want one CSIDriver, StorageClass, VolumeSnapshotClass, Deployment and DaemonSet, got %d %d %d %d %d",
			len(m.drivers), len(m.classes), len(m.snapClasses), len(m.deployments), len(m.daemonSets))
	}
	drv := m.drivers[0]
	if drv.Name != csi.DriverName || drv.Spec.AttachRequired == nil || *drv.Spec.AttachRequired ||
		drv.Spec.StorageCapacity == nil || !*drv.Spec.StorageCapacity {
		t.Errorf("CSIDriver %s: want %s, no attach, storage capacity", drv.Name, csi.DriverName)
	}
	sc := m.classes[0]
	if sc.Provisioner != csi.DriverName || sc.VolumeBindingMode == nil || *sc.VolumeBindingMode != storagev1.VolumeBindingWaitForFirstConsumer ||
		sc.AllowVolumeExpansion == nil || !*sc.AllowVolumeExpansion {
		t.Errorf("StorageClass %s: want provisioner %s, WaitForFirstConsumer, allowVolumeExpansion", sc.Name, csi.DriverName)
	}
	for k := range sc.Parameters {
		if !strings.HasPrefix(k, "csi.storage.k8s.io/") && !slices.Contains([]string{csi.ParamFSType, csi.ParamReadOnly, csi.ParamOverprovisioning}, k) {
			t.Errorf("StorageClass parameter %q: the driver refuses it", k)
		}
	}
	for _, at := range sc.AllowedTopologies {
		for _, e := range at.MatchLabelExpressions {
			if e.Key != csi.TopologyKey {
				t.Errorf("StorageClass allowedTopologies key %q, want %s", e.Key, csi.TopologyKey)
			}
		}
	}
	if vsc := m.snapClasses[0]; vsc.Driver != csi.DriverName || vsc.DeletionPolicy != "Delete" {
		t.Errorf("VolumeSnapshotClass %s: driver %q policy %q", vsc.Name, vsc.Driver, vsc.DeletionPolicy)
	}

	ctl := m.deployments[0].Spec.Template.Spec
	checkPlugin(t, "controller Deployment", ctl, csi.ModeController, "csi-provisioner", "csi-snapshotter", "csi-resizer", "csi-snapshot-metadata")
	checkSnapshotMetadata(t, m)
	prov := container(t, ctl, "csi-provisioner")
	for _, want := range []string{"--feature-gates=Topology=true", "--enable-capacity", "--immediate-topology=false"} {
		if !slices.Contains(prov.Args, want) {
			t.Errorf("csi-provisioner lacks %s", want)
		}
	}

	node := m.daemonSets[0].Spec.Template.Spec
	vol := checkPlugin(t, "node DaemonSet", node, csi.ModeNode, "node-driver-registrar")
	thind := container(t, node, "thind-csi")
	if p := thind.SecurityContext; p == nil || p.Privileged == nil || !*p.Privileged {
		t.Error("node DaemonSet: thind-csi is not privileged")
	}
	reg := container(t, node, "node-driver-registrar")
	ep, _ := flag(thind.Args, "endpoint")
	_, mnt := mountOf(thind, strings.TrimPrefix(ep, "unix://"))
	wantReg := filepath.Join(hostPath(node, vol), strings.TrimPrefix(strings.TrimPrefix(ep, "unix://"), mnt))
	if got, _ := flag(reg.Args, "kubelet-registration-path"); got != wantReg || hostPath(node, vol) != "/var/lib/kubelet/plugins/"+csi.DriverName {
		t.Errorf("registrar registers %q, want %q under /var/lib/kubelet/plugins/%s", got, wantReg, csi.DriverName)
	}
	bidir := false
	for _, mt := range thind.VolumeMounts {
		if mt.MountPath == "/var/lib/kubelet" && mt.MountPropagation != nil && *mt.MountPropagation == corev1.MountPropagationBidirectional {
			bidir = true
		}
	}
	if !bidir {
		t.Error("node DaemonSet: /var/lib/kubelet is not mounted with Bidirectional propagation (mounts would not reach pods)")
	}

	// Service accounts, roles and bindings name each other.
	accounts := map[string]bool{}
	for _, sa := range m.serviceAccounts {
		accounts[sa.Namespace+"/"+sa.Name] = true
	}
	for _, w := range []struct {
		what string
		pod  corev1.PodSpec
		ns   string
	}{{"controller", ctl, m.deployments[0].Namespace}, {"node", node, m.daemonSets[0].Namespace}} {
		if !accounts[w.ns+"/"+w.pod.ServiceAccountName] {
			t.Errorf("%s: service account %s/%s is not defined", w.what, w.ns, w.pod.ServiceAccountName)
		}
		if !slices.ContainsFunc(m.namespaces, func(n corev1.Namespace) bool { return n.Name == w.ns }) {
			t.Errorf("%s: namespace %s is not defined", w.what, w.ns)
		}
	}
	for _, b := range m.clusterBindings {
		if !slices.ContainsFunc(m.clusterRoles, func(r rbacv1.ClusterRole) bool { return r.Name == b.RoleRef.Name }) {
			t.Errorf("ClusterRoleBinding %s: no ClusterRole %s", b.Name, b.RoleRef.Name)
		}
		for _, s := range b.Subjects {
			if !accounts[s.Namespace+"/"+s.Name] {
				t.Errorf("ClusterRoleBinding %s: no service account %s/%s", b.Name, s.Namespace, s.Name)
			}
		}
	}
	for _, b := range m.bindings {
		if !slices.ContainsFunc(m.roles, func(r rbacv1.Role) bool { return r.Name == b.RoleRef.Name && r.Namespace == b.Namespace }) {
			t.Errorf("RoleBinding %s: no Role %s in %s", b.Name, b.RoleRef.Name, b.Namespace)
		}
	}
}

// checkSnapshotMetadata checks that the SnapshotMetadataService object
// names the driver and an address that is a Service reaching the
// controller's csi-snapshot-metadata sidecar, which has its TLS secret
// and the roles it needs.
func checkSnapshotMetadata(t *testing.T, m *manifests) {
	t.Helper()
	if len(m.metadataSvcs) != 1 {
		t.Fatalf("want one SnapshotMetadataService, got %d", len(m.metadataSvcs))
	}
	sms := m.metadataSvcs[0]
	if sms.Name != csi.DriverName || sms.Spec.Audience == "" || len(sms.Spec.CACert) == 0 {
		t.Errorf("SnapshotMetadataService %q: want the name %s, an audience and a CA certificate", sms.Name, csi.DriverName)
	}
	host, port, ok := strings.Cut(sms.Spec.Address, ":")
	svcName, svcNS, _ := strings.Cut(host, ".")
	dep := m.deployments[0]
	pod := dep.Spec.Template
	side := container(t, pod.Spec, "csi-snapshot-metadata")
	found := false
	for _, svc := range m.services {
		if svc.Name != svcName || svc.Namespace != svcNS {
			continue
		}
		found = true
		if svc.Namespace != dep.Namespace {
			t.Errorf("Service %s is not in the controller's namespace %s", svc.Name, dep.Namespace)
		}
		for k, v := range svc.Spec.Selector {
			if pod.Labels[k] != v {
				t.Errorf("Service %s selects %s=%s, which the controller's pods do not carry", svc.Name, k, v)
			}
		}
		reaches := false
		for _, p := range svc.Spec.Ports {
			if fmt.Sprint(p.Port) != port {
				continue
			}
			for _, cp := range side.Ports {
				if (p.TargetPort.StrVal != "" && p.TargetPort.StrVal == cp.Name) || (p.TargetPort.StrVal == "" && p.TargetPort.IntVal == cp.ContainerPort) {
					reaches = true
				}
			}
		}
		if !reaches {
			t.Errorf("Service %s port %s does not reach a port of csi-snapshot-metadata", svc.Name, port)
		}
	}
	if !ok || !found {
		t.Errorf("SnapshotMetadataService address %q is no SERVICE.NAMESPACE:PORT of the manifests", sms.Spec.Address)
	}
	for _, f := range []string{"tls-cert", "tls-key"} {
		path, _ := flag(side.Args, f)
		vol, _ := mountOf(side, path)
		secret := false
		for _, v := range pod.Spec.Volumes {
			secret = secret || (v.Name == vol && v.Secret != nil && v.Secret.SecretName != "")
		}
		if !secret {
			t.Errorf("csi-snapshot-metadata --%s=%q is not on a secret volume", f, path)
		}
	}
	need := map[string]string{"cbt.storage.k8s.io/snapshotmetadataservices": "get",
		"authentication.k8s.io/tokenreviews": "create", "authorization.k8s.io/subjectaccessreviews": "create"}
	bound := map[string]bool{}
	for _, b := range m.clusterBindings {
		for _, sub := range b.Subjects {
			if sub.Kind == "ServiceAccount" && sub.Name == pod.Spec.ServiceAccountName && sub.Namespace == dep.Namespace {
				bound[b.RoleRef.Name] = true
			}
		}
	}
	for _, r := range m.clusterRoles {
		if !bound[r.Name] {
			continue
		}
		for _, rule := range r.Rules {
			for _, g := range rule.APIGroups {
				for _, res := range rule.Resources {
					if v, ok := need[g+"/"+res]; ok && slices.Contains(rule.Verbs, v) {
						delete(need, g+"/"+res)
					}
				}
			}
		}
	}
	for res, verb := range need {
		t.Errorf("the controller's ClusterRole cannot %s %s (csi-snapshot-metadata needs it)", verb, res)
	}
}
