// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/images"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/containerd/pkg/snapshotters"
	"github.com/containerd/containerd/remotes"
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
	ref := fl.Arg(0)
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
		domain, err := refDomain(ref)
		if err != nil {
			fmt.Fprintf(os.Stderr, "skiff-snapshotter pull: %s: %v\n", ref, err)
			return 2
		}
		// skiffd fetches the bootstrap and the data long after this
		// pull, through restarts: it keeps them (root only), once the
		// registry took them (a wrong password replaces no good one)
		if err := reg.check(ctx, ref, u, p); err != nil {
			fmt.Fprintf(os.Stderr, "skiff-snapshotter pull: %s: %v\n", ref, err)
			return 1
		}
		if err := giveCredentials(*skiffd, domain, u, p); err != nil {
			fmt.Fprintf(os.Stderr, "skiff-snapshotter pull: handing the credentials to skiffd at %s: %v\n", *skiffd, err)
			return 1
		}
	}
	resolver, err := reg.resolver(ctx, ref, u, p)
	if err != nil {
		fmt.Fprintf(os.Stderr, "skiff-snapshotter pull: %s: %v\n", ref, err)
		return 2
	}

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

func refDomain(ref string) (string, error) {
	named, err := refdocker.ParseDockerRef(ref)
	if err != nil {
		return "", err
	}
	return refdocker.Domain(named), nil
}

// resolver for ref, with user and pass (if any) sent to the image's
// registry only, never to a mirror hosts.toml names.
func (h registryHosts) resolver(ctx context.Context, ref, user, pass string) (remotes.Resolver, error) {
	domain, err := refDomain(ref)
	if err != nil {
		return nil, err
	}
	opts := config.HostOptions{Credentials: func(host string) (string, string, error) {
		if host == domain || (domain == "docker.io" && host == "registry-1.docker.io") {
			return user, pass, nil
		}
		return "", "", nil
	}}
	if st, err := os.Stat(h.dir); err == nil && st.IsDir() {
		opts.HostDir = config.HostDirFromRoot(h.dir)
	}
	if h.plainHTTP {
		opts.DefaultScheme = "http"
	}
	return docker.NewResolver(docker.ResolverOptions{Hosts: config.ConfigureHosts(ctx, opts)}), nil
}

// check: the registry takes user and pass for ref (it resolves with them).
func (h registryHosts) check(ctx context.Context, ref, user, pass string) error {
	r, err := h.resolver(ctx, ref, user, pass)
	if err == nil {
		_, _, err = r.Resolve(ctx, ref)
	}
	if err != nil {
		return fmt.Errorf("the registry did not take the credentials: %v", err)
	}
	return nil
}

// giveCredentials: POST /v1/credentials on skiffd's control socket.
func giveCredentials(sock, registry, user, pass string) error {
	body, _ := json.Marshal(map[string]string{"registry": registry, "username": user, "password": pass})
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
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
