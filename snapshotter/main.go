// SPDX-License-Identifier: Apache-2.0

// skiff-snapshotter: containerd's remote snapshotter for skiff images.
// containerd pulls a skiff image's manifest and config; each layer's
// Prepare reaches this process, which commits the data blobs at once
// (nothing to download) and has skiffd mount the bootstrap lazily. The
// container's root is an overlay over that mount. Ordinary OCI layers are
// unpacked by containerd into plain overlay snapshots, as with containerd's
// own overlayfs snapshotter.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/containerd/contrib/snapshotservice"
	"google.golang.org/grpc"
)

const usage = `usage: skiff-snapshotter [serve] [OPTIONS]
       skiff-snapshotter pull [OPTIONS] REF

serve (the default) runs containerd's snapshots API on a Unix socket;
containerd reaches it as a proxy plugin:

  [proxy_plugins.skiff]
    type = "snapshot"
    address = "/run/skiff-snapshotter/skiff.sock"

pull pulls an image into containerd lazily: only the manifest, the config
and (through skiffd) the bootstrap are fetched. Run "skiff-snapshotter pull
-h" for its options. See skiff-snapshotter(8).

serve options:
`

func main() {
	log.SetFlags(0)
	log.SetPrefix("skiff-snapshotter: ")
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "pull" {
		os.Exit(pullMain(args[1:]))
	}
	if len(args) > 0 && args[0] == "serve" {
		args = args[1:]
	}
	os.Exit(serveMain(args))
}

func serveMain(args []string) int {
	fl := flag.NewFlagSet("serve", flag.ContinueOnError)
	fl.Usage = func() { fmt.Fprint(os.Stderr, usage); fl.PrintDefaults() }
	addr := fl.String("address", "/run/skiff-snapshotter/skiff.sock", "`socket` containerd connects to")
	root := fl.String("root", "/var/lib/skiff-snapshotter", "`directory` of the snapshots and their metadata")
	sk := &skiffCLI{}
	fl.StringVar(&sk.bin, "skiff", "skiff", "the skiff `program`")
	fl.StringVar(&sk.socket, "skiffd-socket", "", "skiffd's control `socket` (default: skiff's, $SKIFF_SOCKET or /run/skiff/skiffd.sock)")
	fl.StringVar(&sk.domain, "domain", "", "cachefiles `domain` images are mounted in (default: skiffd's)")
	fl.DurationVar(&sk.timeout, "mount-timeout", 2*time.Minute, "how long a lazy mount (fetching the bootstrap) may take")
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if fl.NArg() != 0 {
		fl.Usage()
		return 2
	}
	o, err := newSnapshotter(*root, sk)
	if err != nil {
		log.Printf("%s: %v", *root, err)
		return 1
	}
	if err := os.MkdirAll(filepath.Dir(*addr), 0711); err != nil {
		log.Printf("%v", err)
		return 1
	}
	// a socket left by a process that is gone; a live one answers
	if c, err := net.Dial("unix", *addr); err == nil {
		c.Close()
		log.Printf("%s: another snapshotter is serving there", *addr)
		return 1
	}
	os.Remove(*addr)
	l, err := net.Listen("unix", *addr)
	if err != nil {
		log.Printf("%v", err)
		return 1
	}
	os.Chmod(*addr, 0600)
	rpc := grpc.NewServer()
	snapshotsapi.RegisterSnapshotsServer(rpc, snapshotservice.FromSnapshotter(o))
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		s := <-sig
		log.Printf("%v: stopping (mounts stay: running containers use them)", s)
		// calls in progress finish (a mount half done would be left
		// to garbage collection), for 30 s at most
		t := time.AfterFunc(30*time.Second, rpc.Stop)
		rpc.GracefulStop()
		t.Stop()
	}()
	log.Printf("serving on %s (root %s)", *addr, *root)
	err = rpc.Serve(l)
	o.Close()
	os.Remove(*addr)
	if err != nil {
		log.Printf("%v", err)
		return 1
	}
	return 0
}
