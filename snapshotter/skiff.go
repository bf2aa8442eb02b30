// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/containerd/containerd/reference/docker"
	digest "github.com/opencontainers/go-digest"
)

// skiffCLI reaches skiffd through the skiff command: `skiff mount`
// registers an image with skiffd and mounts it (fanotify or cachefiles,
// whichever skiffd serves), `skiff umount` undoes both. The adapter keeps
// no image logic of its own.
type skiffCLI struct {
	bin     string // the skiff program
	socket  string // skiffd's control socket ("": skiff's default)
	domain  string // cachefiles domain ("": skiffd's default)
	timeout time.Duration
}

// run: skiff ARGS, cut off with the request (containerd gave up) or
// after the timeout.
func (c *skiffCLI) run(ctx context.Context, args ...string) error {
	if c.socket != "" {
		args = append([]string{args[0], "--socket", c.socket}, args[1:]...)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	if ctx.Err() != nil {
		return fmt.Errorf("%s %s: %v", c.bin, strings.Join(args, " "), ctx.Err())
	}
	if err != nil {
		msg := strings.TrimSpace(out.String())
		if msg == "" {
			msg = err.Error()
		}
		return fmt.Errorf("%s", msg)
	}
	return nil
}

func (c *skiffCLI) mount(ctx context.Context, image, dir string) error {
	args := []string{"mount"}
	if c.domain != "" {
		args = append(args, "--domain", c.domain)
	}
	return c.run(ctx, append(args, image, dir)...)
}

func (c *skiffCLI) umount(ctx context.Context, dir string) error {
	return c.run(ctx, "umount", dir)
}

// imageRef: the registry image a layer belongs to, pinned to the manifest
// the pull resolved (a tag may move while the image is in use), in the
// form skiff mount takes: docker://HOST/REPO@sha256:HEX.
func imageRef(labels map[string]string) (string, error) {
	ref, dgst := labels[labelImageRef], labels[labelManifest]
	if ref == "" || dgst == "" {
		return "", errNoImage
	}
	named, err := docker.ParseDockerRef(ref)
	if err != nil {
		return "", fmt.Errorf("image reference %q: %w", ref, err)
	}
	d, err := digest.Parse(dgst)
	if err != nil || d.Algorithm() != digest.SHA256 {
		return "", fmt.Errorf("manifest digest %q: not a sha256 digest", dgst)
	}
	return "docker://" + docker.Domain(named) + "/" + docker.Path(named) + "@" + d.String(), nil
}
