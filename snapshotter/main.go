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
	"sync"
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
	criSock := fl.String("cri-image-service", "", "also serve CRI's image service on this `socket`, for kubelet's --image-service-endpoint: pulls go on to containerd, their credentials (image pull secrets) to skiffd too")
	criAddr := fl.String("cri-address", "/run/containerd/containerd.sock", "containerd's CRI `socket`, where the image service's calls go")
	hostsDir := fl.String("hosts-dir", "/etc/containerd/certs.d", "registry host configuration `directory` (the CRI plugin's config_path): how the image service checks a pull's credentials")
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
	l, err := listenUnix(*addr)
	if err != nil {
		log.Printf("%v", err)
		o.Close()
		return 1
	}
	rpc := grpc.NewServer()
	snapshotsapi.RegisterSnapshotsServer(rpc, snapshotservice.FromSnapshotter(o))
	var cri *grpc.Server
	var criL net.Listener
	if *criSock != "" {
		skiffd := sk.socket
		if skiffd == "" {
			skiffd = defaultSkiffdSocket()
		}
		reg := registryHosts{dir: *hostsDir}
		p, err := newCRIProxy(*criAddr, skiffd, reg.check)
		if err == nil {
			criL, err = listenUnix(*criSock)
		}
		if err != nil {
			log.Printf("%s: %v", *criSock, err)
			l.Close()
			os.Remove(*addr)
			o.Close()
			return 1
		}
		cri = p.server()
	}
	// stop: the image service first (a pull it passes on unpacks through
	// the snapshotter), then the snapshotter; calls in progress finish
	// (a mount half done would be left to garbage collection), for 30 s
	// at most each
	stopped := make(chan struct{})
	var once sync.Once
	stop := func() {
		once.Do(func() {
			for _, srv := range []*grpc.Server{cri, rpc} {
				if srv == nil {
					continue
				}
				t := time.AfterFunc(30*time.Second, srv.Stop)
				srv.GracefulStop()
				t.Stop()
			}
			close(stopped)
		})
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		s := <-sig
		log.Printf("%v: stopping (mounts stay: running containers use them)", s)
		stop()
	}()
	var criErr error
	criDone := make(chan struct{})
	if cri != nil {
		log.Printf("serving CRI's image service on %s (on to %s)", *criSock, *criAddr)
		go func() {
			// kubelet's image endpoint gone while the process lives
			// would be worse than a restart: stop it all
			if criErr = cri.Serve(criL); criErr != nil {
				log.Printf("%s: %v", *criSock, criErr)
				go stop()
			}
			close(criDone)
		}()
	} else {
		close(criDone)
	}
	log.Printf("serving on %s (root %s)", *addr, *root)
	err = rpc.Serve(l)
	if err != nil {
		go stop()
	}
	<-stopped
	<-criDone
	if cri != nil {
		os.Remove(*criSock)
	}
	o.Close()
	os.Remove(*addr)
	if err == nil {
		err = criErr
	}
	if err != nil {
		log.Printf("%v", err)
		return 1
	}
	return 0
}

// listenUnix: a socket for root alone at path, replacing one a process
// that is gone left (a live one answers: then it fails)
func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0711); err != nil {
		return nil, err
	}
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		return nil, fmt.Errorf("%s: another process is serving there", path)
	}
	os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0600); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}
