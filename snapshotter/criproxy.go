// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"log"
	"net"
	"strings"
	"time"

	refdocker "github.com/containerd/containerd/reference/docker"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
)

// criProxy serves CRI's image service to kubelet (its
// --image-service-endpoint) in front of containerd's CRI plugin. Every
// call goes through as it came, bytes unchanged. A PullImage that carries
// credentials (kubelet's image pull secrets) first hands them to skiffd
// for the image's registry: containerd's CRI plugin uses them for the
// manifest and config but passes them to no snapshotter, and skiffd
// fetches the bootstrap and the data of a private skiff image long after
// the pull. Credentials the registry refuses are not handed over, so a
// wrong secret never replaces working ones.
//
// Debian 12 packages no CRI API (k8s.io/cri-api): the one message read
// here is decoded with protowire, everything else passes as bytes.
type criProxy struct {
	backend *grpc.ClientConn // containerd's CRI socket
	skiffd  string           // skiffd's control socket
	check   func(ctx context.Context, ref, user, pass string) error
}

// raw passes messages as bytes: a codec for both grpc's client (Name)
// and its server (String) in Debian's grpc 1.33.
type raw struct{}

func (raw) Marshal(v interface{}) ([]byte, error) { return *(v.(*[]byte)), nil }
func (raw) Unmarshal(b []byte, v interface{}) error {
	*(v.(*[]byte)) = append([]byte(nil), b...)
	return nil
}
func (raw) Name() string   { return "proto" }
func (raw) String() string { return "proto" }

func newCRIProxy(backendSock, skiffd string,
	check func(ctx context.Context, ref, user, pass string) error) (*criProxy, error) {
	conn, err := grpc.Dial(backendSock, grpc.WithInsecure(),
		grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", a)
		}))
	if err != nil {
		return nil, err
	}
	return &criProxy{backend: conn, skiffd: skiffd, check: check}, nil
}

func (p *criProxy) server() *grpc.Server {
	return grpc.NewServer(grpc.CustomCodec(raw{}), grpc.UnknownServiceHandler(p.handle))
}

// handle: one call of kubelet's, all of the image service's are unary
func (p *criProxy) handle(_ interface{}, stream grpc.ServerStream) error {
	method, ok := grpc.MethodFromServerStream(stream)
	if !ok {
		return status.Error(codes.Internal, "no method name")
	}
	if !strings.HasPrefix(method, "/runtime.v1.ImageService/") &&
		!strings.HasPrefix(method, "/runtime.v1alpha2.ImageService/") {
		return status.Errorf(codes.Unimplemented,
			"%s: skiff-snapshotter serves the CRI image service only (point kubelet's --container-runtime-endpoint at containerd)", method)
	}
	var req, resp []byte
	if err := stream.RecvMsg(&req); err != nil {
		return err
	}
	ctx := stream.Context()
	if strings.HasSuffix(method, "/PullImage") {
		if err := p.handOver(ctx, req); err != nil {
			return status.Errorf(codes.Unavailable, "skiff-snapshotter: %v", err)
		}
	}
	md, _ := metadata.FromIncomingContext(ctx)
	if err := p.backend.Invoke(metadata.NewOutgoingContext(ctx, md), method, &req, &resp,
		grpc.ForceCodec(raw{})); err != nil {
		return err // containerd's status, as it said it
	}
	return stream.SendMsg(&resp)
}

// handOver: a PullImage's credentials to skiffd, for the registry of its
// image, once that registry took them.
func (p *criProxy) handOver(ctx context.Context, req []byte) error {
	ref, user, pass, err := pullAuth(req)
	if err != nil || user == "" {
		return err // a bad message: containerd says what is wrong with it
	}
	named, err := refdocker.ParseDockerRef(ref)
	if err != nil {
		return nil // containerd refuses it, saying why
	}
	domain := refdocker.Domain(named)
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := p.check(cctx, ref, user, pass); err != nil {
		log.Printf("%s: the pull's credentials for %s: %v (not handed to skiffd)", ref, domain, err)
		return nil
	}
	if err := giveCredentials(p.skiffd, domain, user, pass); err != nil {
		return fmt.Errorf("handing the pull's credentials for %s to skiffd at %s: %v", domain, p.skiffd, err)
	}
	log.Printf("%s: the pull's credentials for %s handed to skiffd", ref, domain)
	return nil
}

// pullAuth reads what it needs of a PullImageRequest:
//
//	PullImageRequest { ImageSpec image = 1 { string image = 1 };
//	                   AuthConfig auth = 2 { string username = 1;
//	                     string password = 2; string auth = 3 (base64
//	                     "user:password"); identity_token = 5;
//	                     registry_token = 6 } }
//
// Token credentials (identity or registry token) are not taken: skiffd
// takes a user name and password.
func pullAuth(req []byte) (ref, user, pass string, err error) {
	var image, auth []byte
	if err = fields(req, func(n protowire.Number, v []byte) {
		switch n {
		case 1:
			image = v
		case 2:
			auth = v
		}
	}); err != nil {
		return
	}
	if err = fields(image, func(n protowire.Number, v []byte) {
		if n == 1 {
			ref = string(v)
		}
	}); err != nil {
		return
	}
	var basic string
	err = fields(auth, func(n protowire.Number, v []byte) {
		switch n {
		case 1:
			user = string(v)
		case 2:
			pass = string(v)
		case 3:
			basic = string(v)
		}
	})
	if err == nil && user == "" && basic != "" {
		if b, e := base64.StdEncoding.DecodeString(basic); e == nil {
			user, pass, _ = strings.Cut(string(b), ":")
		}
	}
	if pass == "" {
		user = ""
	}
	return
}

// fields calls f with each length-delimited field of a message; other
// wire types are skipped.
func fields(b []byte, f func(protowire.Number, []byte)) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if typ == protowire.BytesType {
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return protowire.ParseError(m)
			}
			f(num, v)
			n = m
		} else {
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return protowire.ParseError(n)
			}
		}
		b = b[n:]
	}
	return nil
}
