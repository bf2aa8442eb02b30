// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"encoding/base64"
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
// the pull. Only credentials the image's registry itself asked for and
// took are handed over, so a wrong secret never replaces working ones;
// whatever happens to the credentials, the call goes on to containerd,
// which says what it makes of the pull.
//
// Debian 12 packages no CRI API (k8s.io/cri-api): the one message read
// here is decoded with protowire, everything else passes as bytes.
type criProxy struct {
	backend *grpc.ClientConn // containerd's CRI socket
	skiffd  string           // skiffd's control socket
	check   func(ctx context.Context, named refdocker.Named, user, pass string) error
}

// kubelet's client takes answers of up to 16 MiB (a long ListImages)
const criMaxMsg = 16 << 20

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
	check func(ctx context.Context, named refdocker.Named, user, pass string) error) (*criProxy, error) {
	conn, err := grpc.Dial(backendSock, grpc.WithInsecure(),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(criMaxMsg), grpc.MaxCallSendMsgSize(criMaxMsg)),
		grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", a)
		}))
	if err != nil {
		return nil, err
	}
	return &criProxy{backend: conn, skiffd: skiffd, check: check}, nil
}

func (p *criProxy) server() *grpc.Server {
	return grpc.NewServer(grpc.CustomCodec(raw{}), grpc.UnknownServiceHandler(p.handle),
		grpc.MaxRecvMsgSize(criMaxMsg), grpc.MaxSendMsgSize(criMaxMsg))
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
		p.handOver(ctx, req)
	}
	md, _ := metadata.FromIncomingContext(ctx)
	var header, trailer metadata.MD
	err := p.backend.Invoke(metadata.NewOutgoingContext(ctx, md), method, &req, &resp,
		grpc.ForceCodec(raw{}), grpc.Header(&header), grpc.Trailer(&trailer))
	stream.SetTrailer(trailer)
	if err != nil {
		return err // containerd's status, as it said it
	}
	if err := stream.SetHeader(header); err != nil {
		return err
	}
	return stream.SendMsg(&resp)
}

// handOver: a PullImage's credentials to skiffd, for the registry of its
// image, once that registry asked for them and took them. It never fails
// the call: what it could not do is logged, and containerd pulls as it
// would have without it (a skiff image's mount then fails saying why).
func (p *criProxy) handOver(ctx context.Context, req []byte) {
	a, err := pullAuth(req)
	if err != nil || a.user == "" {
		return // containerd says what is wrong with a bad message
	}
	named, err := refdocker.ParseDockerRef(a.ref)
	if err != nil {
		return // containerd refuses it, saying why
	}
	ref, domain := named.String(), refdocker.Domain(named)
	// as containerd's CRI plugin does, a secret that names another
	// registry is not used for this one
	if a.server != "" && !sameRegistry(a.server, domain) {
		log.Printf("%s: the pull's credentials are for %s, not %s: not handed to skiffd", ref, a.server, domain)
		return
	}
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := p.check(cctx, named, a.user, a.pass); err != nil {
		log.Printf("%s: the pull's credentials for %s: %v (not handed to skiffd)", ref, domain, err)
		return
	}
	if err := giveCredentials(p.skiffd, domain, a.user, a.pass); err != nil {
		log.Printf("%s: handing the pull's credentials for %s to skiffd at %s: %v", ref, domain, p.skiffd, err)
		return
	}
	log.Printf("%s: the pull's credentials for %s handed to skiffd", ref, domain)
}

// sameRegistry: an AuthConfig's server_address ("host[:port]", maybe
// with a scheme and a path, Docker Hub's under several names) names the
// registry domain
func sameRegistry(server, domain string) bool {
	h := strings.TrimPrefix(strings.TrimPrefix(server, "https://"), "http://")
	h, _, _ = strings.Cut(h, "/")
	if domain == "docker.io" {
		return h == "docker.io" || h == "index.docker.io" || h == "registry-1.docker.io"
	}
	return h == domain
}

type pullReq struct {
	ref, user, pass, server string
}

// pullAuth reads what it needs of a PullImageRequest:
//
//	PullImageRequest { ImageSpec image = 1 { string image = 1 };
//	                   AuthConfig auth = 2 { string username = 1;
//	                     string password = 2; string auth = 3 (base64
//	                     "user:password"); string server_address = 4;
//	                     identity_token = 5; registry_token = 6 } }
//
// Token credentials (identity or registry token) are not taken: skiffd
// takes a user name and password.
func pullAuth(req []byte) (a pullReq, err error) {
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
			a.ref = string(v)
		}
	}); err != nil {
		return
	}
	var basic string
	err = fields(auth, func(n protowire.Number, v []byte) {
		switch n {
		case 1:
			a.user = string(v)
		case 2:
			a.pass = string(v)
		case 3:
			basic = string(v)
		case 4:
			a.server = string(v)
		}
	})
	if err == nil && a.user == "" && basic != "" {
		if b, e := base64.StdEncoding.DecodeString(basic); e == nil {
			a.user, a.pass, _ = strings.Cut(string(b), ":")
		}
	}
	if a.pass == "" {
		a.user = ""
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
