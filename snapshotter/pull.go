// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/images"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/containerd/pkg/snapshotters"
	refdocker "github.com/containerd/containerd/reference/docker"
	"github.com/containerd/containerd/remotes/docker"
	"github.com/containerd/containerd/remotes/docker/config"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

const pullUsage = `usage: skiff-snapshotter pull [OPTIONS] REF

Pulls REF (HOST[:PORT]/REPO[:TAG|@DIGEST]) into containerd and unpacks it
with the skiff snapshotter, passing each layer the labels the CRI plugin
passes (image reference, manifest and layer digests). For a skiff image
only the manifest and the config are downloaded here; skiffd fetches the
bootstrap when the snapshotter mounts it, and file data when it is read.
An ordinary image is downloaded and unpacked as usual. Then:
ctr run --snapshotter skiff REF ID.

options:
`

func pullMain(args []string) int {
	fl := flag.NewFlagSet("pull", flag.ContinueOnError)
	fl.Usage = func() { fmt.Fprint(os.Stderr, pullUsage); fl.PrintDefaults() }
	addr := fl.String("address", "/run/containerd/containerd.sock", "containerd's `socket`")
	ns := fl.String("namespace", "default", "containerd `namespace` (the CRI plugin's is k8s.io)")
	sn := fl.String("snapshotter", "skiff", "the snapshotter's `name` in containerd's proxy_plugins")
	hostsDir := fl.String("hosts-dir", "/etc/containerd/certs.d", "registry host configuration (hosts.toml, certificates) `directory`, as containerd's config_path")
	plain := fl.Bool("plain-http", false, "talk plain HTTP to the registry")
	user := fl.String("user", "", "registry credentials `USER[:PASSWORD]` (the password from $SKIFF_PULL_PASSWORD when left out)")
	platform := fl.String("platform", "", "`os/arch` to pull (default: this machine's)")
	skiffd := fl.String("skiffd-socket", defaultSkiffdSocket(), "skiffd's control `socket`: --user credentials go there too, for the image's data")
	timeout := fl.Duration("timeout", 10*time.Minute, "give up after this long")
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if fl.NArg() != 1 {
		fl.Usage()
		return 2
	}
	named, err := refdocker.ParseDockerRef(fl.Arg(0))
	if err != nil {
		fmt.Fprintf(os.Stderr, "skiff-snapshotter pull: %s: %v\n", fl.Arg(0), err)
		return 2
	}
	// the full name (docker.io/library/... for a short one), as the CRI
	// plugin labels layers with it
	ref := named.String()
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), *ns), *timeout)
	defer cancel()
	reg := registryHosts{dir: *hostsDir, plainHTTP: *plain}
	var u, p string
	if *user != "" {
		var ok bool
		u, p, ok = strings.Cut(*user, ":")
		if !ok {
			p = os.Getenv("SKIFF_PULL_PASSWORD")
		}
		if u == "" || p == "" {
			fmt.Fprintln(os.Stderr, "skiff-snapshotter pull: --user needs USER:PASSWORD, or USER and $SKIFF_PULL_PASSWORD")
			return 2
		}
		// skiffd fetches the bootstrap and the data long after this
		// pull, through restarts: it keeps them (root only), once the
		// registry took them (a wrong password replaces no good one)
		switch err := reg.check(ctx, named, u, p); {
		case errors.Is(err, errNotAsked):
			fmt.Fprintf(os.Stderr, "skiff-snapshotter pull: %s: %v: skiffd is not handed them\n", ref, err)
		case err != nil:
			fmt.Fprintf(os.Stderr, "skiff-snapshotter pull: %s: %v\n", ref, err)
			return 1
		default:
			if err := giveCredentials(*skiffd, refdocker.Domain(named), u, p); err != nil {
				fmt.Fprintf(os.Stderr, "skiff-snapshotter pull: handing the credentials to skiffd at %s: %v\n", *skiffd, err)
				return 1
			}
		}
	}
	resolver := docker.NewResolver(docker.ResolverOptions{
		Hosts: reg.hosts(ctx, refdocker.Domain(named), u, p, false, nil)})

	client, err := containerd.New(*addr, containerd.WithTimeout(30*time.Second))
	if err != nil {
		fmt.Fprintf(os.Stderr, "skiff-snapshotter pull: containerd at %s: %v\n", *addr, err)
		return 1
	}
	defer client.Close()
	layers := 0
	count := func(h images.Handler) images.Handler {
		return images.HandlerFunc(func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
			children, err := h.Handle(ctx, desc)
			if err == nil && images.IsManifestType(desc.MediaType) {
				for _, c := range children {
					if images.IsLayerType(c.MediaType) {
						layers++
					}
				}
				fmt.Printf("%s: manifest %s, %d layers\n", ref, desc.Digest, layers)
			}
			return children, err
		})
	}
	popts := []containerd.RemoteOpt{
		containerd.WithResolver(resolver),
		containerd.WithPullUnpack,
		containerd.WithPullSnapshotter(*sn),
		containerd.WithImageHandlerWrapper(func(h images.Handler) images.Handler {
			return count(snapshotters.AppendInfoHandlerWrapper(ref)(h))
		}),
	}
	if *platform != "" {
		popts = append(popts, containerd.WithPlatform(*platform))
	}
	start := time.Now()
	img, err := client.Pull(ctx, ref, popts...)
	if err != nil {
		fmt.Fprintf(os.Stderr, "skiff-snapshotter pull: %s: %v\n", ref, err)
		return 1
	}
	fmt.Printf("%s: pulled %s into %s (snapshotter %s) in %.2f s\n", ref, img.Target().Digest, *ns, *sn,
		time.Since(start).Seconds())
	return 0
}

func defaultSkiffdSocket() string {
	if s := os.Getenv("SKIFF_SOCKET"); s != "" {
		return s
	}
	return "/run/skiff/skiffd.sock"
}

// registryHosts: how registries are reached, as containerd's CRI plugin
// is told (config_path: a hosts.toml and certificates per host).
type registryHosts struct {
	dir       string // "": none
	plainHTTP bool
}

// errNotAsked: the registry served the image without asking for the
// credentials, so nothing says they are right.
var errNotAsked = errors.New("the registry did not ask for the credentials")

func isRegistry(domain, host string) bool {
	return host == domain || (domain == "docker.io" && host == "registry-1.docker.io")
}

// hosts for an image of registry domain: user and pass (if any) go to
// that registry only, never to a mirror hosts.toml names; originOnly
// leaves the mirrors out; asked (if not nil) is set once the registry
// asks for credentials.
func (h registryHosts) hosts(ctx context.Context, domain, user, pass string, originOnly bool,
	asked *atomic.Bool) docker.RegistryHosts {
	opts := config.HostOptions{Credentials: func(host string) (string, string, error) {
		if !isRegistry(domain, host) {
			return "", "", nil
		}
		if asked != nil {
			asked.Store(true)
		}
		return user, pass, nil
	}}
	if st, err := os.Stat(h.dir); err == nil && st.IsDir() {
		opts.HostDir = config.HostDirFromRoot(h.dir)
	}
	if h.plainHTTP {
		opts.DefaultScheme = "http"
	}
	all := config.ConfigureHosts(ctx, opts)
	if !originOnly {
		return all
	}
	return func(host string) ([]docker.RegistryHost, error) {
		hs, err := all(host)
		if err != nil {
			return nil, err
		}
		var origin []docker.RegistryHost
		for _, rh := range hs {
			if isRegistry(domain, rh.Host) {
				origin = append(origin, rh)
			}
		}
		if len(origin) == 0 {
			return nil, fmt.Errorf("%s: no host of its own in the registry configuration (a mirror or another server only)", host)
		}
		return origin, nil
	}
}

// check: the image's registry itself (no mirror: a mirror that serves
// the image proves nothing of the password) asks for user and pass and
// takes them, resolving named with them. errNotAsked when it serves
// without asking.
func (h registryHosts) check(ctx context.Context, named refdocker.Named, user, pass string) error {
	var asked atomic.Bool
	r := docker.NewResolver(docker.ResolverOptions{
		Hosts: h.hosts(ctx, refdocker.Domain(named), user, pass, true, &asked)})
	if _, _, err := r.Resolve(ctx, named.String()); err != nil {
		return fmt.Errorf("the registry did not take the credentials: %v", err)
	}
	if !asked.Load() {
		return errNotAsked
	}
	return nil
}

// giveCredentials: POST /v1/credentials on skiffd's control socket.
func giveCredentials(sock, registry, user, pass string) error {
	body, _ := json.Marshal(map[string]string{"registry": registry, "username": user, "password": pass})
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		// one call: no idle connection left holding one of skiffd's
		// control slots
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
	resp, err := c.Post("http://skiffd/v1/credentials", "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(msg)))
	}
	return nil
}
