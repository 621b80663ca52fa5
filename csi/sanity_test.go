package csi_test

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubernetes-csi/csi-test/v5/pkg/sanity"
	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/ginkgo/v2/types"
	"github.com/onsi/gomega"

	"github.com/thind-storage/thind/control"
	"github.com/thind-storage/thind/csi"
	"github.com/thind-storage/thind/daemon"
	"github.com/thind-storage/thind/internal/pooltest"
	"github.com/thind-storage/thind/internal/tooltest"
)

// env is a real daemon on a new pool with a controller and a node driver
// in front of it, each on its own socket.
type env struct {
	dir                  string
	controller, node     string // unix:// endpoints
	controlSock, nbdSock string
	loop                 *loopAttacher // the node's attacher, if loop
}

// startEnv starts the daemon (the code `thind serve` runs) and both
// drivers; all stop, and the pool is checked, when t ends. The node
// driver attaches with the kernel's NBD client (`thind attach`) unless
// loop is set: then with nbdfuse and a loop device (loop_test.go).
func startEnv(t *testing.T, loop bool) *env {
	t.Helper()
	dir := tooltest.ShortDir(t)
	if *extNode != "" {
		return &env{dir: dir, controller: *extController, node: *extNode, controlSock: *extControl}
	}
	e := startPool(t, dir)
	e.node = "unix://" + filepath.Join(dir, "node.sock")
	var attacher csi.Attacher = csi.ExecAttacher{Binary: "thind", NBDSocket: e.nbdSock}
	if loop {
		e.loop = newLoopAttacher(t, dir, e.nbdSock)
		t.Cleanup(e.loop.release) // while the daemon still serves the devices
		attacher = e.loop
	}
	serveDriver(t, csi.Config{Mode: csi.ModeController, NodeID: "node-a", ControlSocket: e.controlSock}, e.controller)
	serveDriver(t, csi.Config{Mode: csi.ModeNode, NodeID: "node-a", ControlSocket: e.controlSock,
		StateDir: filepath.Join(dir, "csi"), Attacher: attacher}, e.node)
	return e
}

// quiet is the tests' logger.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// startPool starts a daemon on a new pool in dir; it stops, and the pool
// is checked, when t ends. The env has no driver yet: its controller is
// only the endpoint one would serve on.
func startPool(t *testing.T, dir string) *env {
	t.Helper()
	pooltest.CheckFile(t, filepath.Join(dir, "metadata"))
	e := &env{
		dir:         dir,
		controller:  "unix://" + filepath.Join(dir, "controller.sock"),
		controlSock: filepath.Join(dir, "control.sock"),
		nbdSock:     filepath.Join(dir, "nbd.sock"),
	}
	cfg := daemon.Config{
		DataDir: dir, DataSize: 8 << 30, MetadataSize: 64 << 20, DefaultSize: 256 << 20,
		Listen: []string{"unix:" + e.nbdSock}, MetricsAddr: "off", Logger: quiet,
	}
	ctx, cancel := context.WithCancel(context.Background())
	d, err := daemon.New(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("daemon stop: %v", err)
		}
	})
	// The control socket is up once Run has started it.
	c := control.New(e.controlSock)
	defer c.Close()
	deadline := time.Now().Add(30 * time.Second)
	for _, err := c.Pool(ctx); err != nil; _, err = c.Pool(ctx) {
		if time.Now().After(deadline) {
			t.Fatalf("the daemon's control API did not come up: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return e
}

// serveDriver serves a driver of cfg on the unix endpoint (and remote)
// until the returned stop is called or t ends.
func serveDriver(t *testing.T, cfg csi.Config, endpoint string, remote ...csi.Remote) (stop func()) {
	t.Helper()
	cfg.Logger = quiet
	drv, err := csi.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := csi.Listen(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	return serveUntilStopped(t, func(ctx context.Context) error { return drv.Serve(ctx, l, remote...) })
}

// serveUntilStopped runs serve until stop is called (once, or again when
// t ends).
func serveUntilStopped(t *testing.T, serve func(context.Context) error) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("stop: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// The sanity suite runs four times: with mount and with block volumes,
// against one node's drivers and through the router in front of two
// nodes' controllers (cluster_test.go). The Node Service tests need the
// kernel's NBD client and run in the kernel VM suite; here they are
// skipped by name.
var sanityConfigs = map[string]*sanity.TestConfig{
	"mount": sanityConfig("mount"), "block": sanityConfig("block"),
	"router mount": sanityConfig("mount"), "router block": sanityConfig("block"),
}

// routerContext names the router's runs, to skip them where the drivers
// are not started here.
const routerContext = "through the router"

func sanityConfig(access string) *sanity.TestConfig {
	cfg := sanity.NewTestConfig()
	cfg.TestVolumeAccessType = access
	cfg.TestVolumeSize = 64 << 20
	cfg.TestVolumeExpandSize = 128 << 20
	cfg.IdempotentCount = 2
	return &cfg
}

// sanityContexts hold the suite's connections, closed after the run.
var sanityContexts []*sanity.TestContext

// Ginkgo builds the tree when RunSpecs runs; the configurations are
// filled in by then.
var _ = ginkgo.Describe("thind csi", func() {
	for _, access := range []string{"mount", "block"} {
		ginkgo.Context("with "+access+" volumes", func() {
			sanityContexts = append(sanityContexts, sanity.GinkgoTest(sanityConfigs[access]))
		})
		ginkgo.Context(routerContext+" with "+access+" volumes", func() {
			sanityContexts = append(sanityContexts, sanity.GinkgoTest(sanityConfigs["router "+access]))
		})
	}
})

// nodeLoop runs the sanity suite's Node Service specs too, with the node
// attaching through nbdfuse and a loop device instead of the kernel's NBD
// client (loop_test.go). Ginkgo runs one suite per process, hence a flag.
var nodeLoop = flag.Bool("sanity.node-loop", false, "run csi-sanity's Node Service specs with the nbdfuse+loop attacher")

// In the kernel VM suite (test/vm/thind.sh, part csi) the drivers are
// `thind csi` processes in the guest, attaching with the kernel's NBD
// client to the daemon on the host: these flags name their endpoints and
// the daemon's (forwarded) control socket, and startEnv starts nothing.
var (
	extController = flag.String("csi.controller", "", "use this running controller (unix://...) instead of starting one")
	extNode       = flag.String("csi.node", "", "use this running node driver (unix://...) instead of starting one")
	extControl    = flag.String("csi.control", "", "the control socket of the daemon the running drivers use")
)

func TestSanity(t *testing.T) {
	e := startEnv(t, *nodeLoop)
	for _, access := range []string{"mount", "block"} {
		cfg := sanityConfigs[access]
		cfg.Address = e.node
		cfg.ControllerAddress = e.controller
		cfg.TargetPath = filepath.Join(e.dir, "target")
		cfg.StagingPath = filepath.Join(e.dir, "staging")
	}
	gomega.RegisterFailHandler(ginkgo.Fail)
	suite, reporter := ginkgo.GinkgoConfiguration()
	if *extNode == "" {
		cl := startCluster(t)
		for _, access := range []string{"mount", "block"} {
			cfg := sanityConfigs["router "+access]
			// The router serves no Node service: the Node specs are
			// skipped below, and the suite's clean-up unpublishes
			// through node-a's node plugin.
			cfg.Address, cfg.ControllerAddress = cl.node, cl.router
			cfg.TargetPath = filepath.Join(cl.dir, "target")
			cfg.StagingPath = filepath.Join(cl.dir, "staging")
		}
	} else {
		suite.SkipStrings = append(suite.SkipStrings, routerContext)
	}
	if !*nodeLoop && *extNode == "" {
		suite.SkipStrings = append(suite.SkipStrings, "Node Service")
	} else {
		suite.SkipStrings = append(suite.SkipStrings, routerContext+" with (mount|block) volumes Node Service")
	}
	reporter.Succinct = true
	var report ginkgo.Report
	ginkgo.ReportAfterSuite("counts", func(r ginkgo.Report) { report = r })
	reporter.NoColor = true
	ok := ginkgo.RunSpecs(t, "thind CSI sanity", suite, reporter)
	for _, sc := range sanityContexts {
		sc.Finalize()
	}
	var passed, failed, skipped int
	var names []string
	groups, skippedGroups := map[string]int{}, map[string]int{}
	for _, s := range report.SpecReports {
		switch {
		case s.State.Is(types.SpecStatePassed):
			passed++
			names = append(names, s.FullText())
			if len(s.ContainerHierarchyTexts) > 2 {
				groups[s.ContainerHierarchyTexts[1]+" / "+s.ContainerHierarchyTexts[2]]++
			}
		case s.State.Is(types.SpecStateFailureStates):
			failed++
		case s.State.Is(types.SpecStateSkipped | types.SpecStatePending):
			skipped++
			if len(s.ContainerHierarchyTexts) > 2 {
				skippedGroups[s.ContainerHierarchyTexts[2]]++
			}
		}
	}
	t.Logf("csi-sanity: %d passed, %d failed, %d skipped (unadvertised capabilities; Node Service unless -sanity.node-loop or -csi.node)", passed, failed, skipped)
	for _, g := range slices.Sorted(maps.Keys(groups)) {
		t.Logf("  %3d passed: %s", groups[g], g)
	}
	for _, g := range slices.Sorted(maps.Keys(skippedGroups)) {
		t.Logf("  %3d skipped: %s (both access types)", skippedGroups[g], g)
	}
	if testing.Verbose() {
		t.Logf("passed:\n%s", strings.Join(names, "\n"))
	}
	if !ok || failed > 0 {
		t.Fatal("csi-sanity failed")
	}
	if passed == 0 {
		t.Fatal("csi-sanity ran no test")
	}
}
