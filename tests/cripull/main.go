// SPDX-License-Identifier: Apache-2.0

// cripull plays kubelet's part in the tests: it asks containerd's CRI
// plugin to pull an image (ImageService.PullImage), optionally with
// registry credentials, as kubelet does. Debian 12 does not package the
// CRI API (k8s.io/cri-api), so the two small messages are written and
// read with protowire and sent through a pass-through codec.
//
// usage: cripull SOCKET REF [USER PASSWORD [SERVER_ADDRESS]]
//
//	cripull SOCKET --list      ListImages: each image's tags, one a line
//	cripull SOCKET --version   RuntimeService.Version: the runtime's name
package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protowire"
)

type passThrough struct{}

func (passThrough) Marshal(v interface{}) ([]byte, error) { return *(v.(*[]byte)), nil }
func (passThrough) Unmarshal(b []byte, v interface{}) error {
	*(v.(*[]byte)) = append([]byte(nil), b...)
	return nil
}
func (passThrough) Name() string { return "proto" }

func field(b []byte, num protowire.Number, v []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

// strings calls f with each string field num of message b
func strings(b []byte, num protowire.Number, f func([]byte)) {
	for len(b) > 0 {
		n, typ, k := protowire.ConsumeTag(b)
		if k < 0 {
			return
		}
		b = b[k:]
		if typ != protowire.BytesType {
			if k = protowire.ConsumeFieldValue(n, typ, b); k < 0 {
				return
			}
			b = b[k:]
			continue
		}
		v, m := protowire.ConsumeBytes(b)
		if m < 0 {
			return
		}
		if n == num {
			f(v)
		}
		b = b[m:]
	}
}

func main() {
	if len(os.Args) != 3 && len(os.Args) != 5 && len(os.Args) != 6 {
		fmt.Fprintln(os.Stderr, "usage: cripull SOCKET REF [USER PASSWORD [SERVER_ADDRESS]] | SOCKET --list | SOCKET --version")
		os.Exit(2)
	}
	sock, ref := os.Args[1], os.Args[2]
	method := "/runtime.v1.ImageService/PullImage"
	// PullImageRequest { ImageSpec image = 1 { string image = 1 };
	//                    AuthConfig auth = 2 { username = 1; password = 2;
	//                                          server_address = 4 } }
	req := field(nil, 1, field(nil, 1, []byte(ref)))
	if len(os.Args) >= 5 {
		auth := field(field(nil, 1, []byte(os.Args[3])), 2, []byte(os.Args[4]))
		if len(os.Args) == 6 {
			auth = field(auth, 4, []byte(os.Args[5]))
		}
		req = field(req, 2, auth)
	}
	switch ref {
	case "--list":
		method, req = "/runtime.v1.ImageService/ListImages", []byte{}
	case "--version":
		method, req = "/runtime.v1.RuntimeService/Version", []byte{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	conn, err := grpc.DialContext(ctx, sock, grpc.WithInsecure(), grpc.WithBlock(),
		grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", a)
		}))
	if err != nil {
		fmt.Fprintf(os.Stderr, "cripull: %s: %v\n", sock, err)
		os.Exit(1)
	}
	defer conn.Close()
	var resp []byte
	// containerd 1.6 serves both versions of the API; kubelet 1.26+ uses v1
	err = conn.Invoke(ctx, method, &req, &resp, grpc.ForceCodec(passThrough{}))
	if err != nil {
		fmt.Fprintf(os.Stderr, "cripull: %s: %v\n", ref, err)
		os.Exit(1)
	}
	switch ref {
	case "--list": // ListImagesResponse { repeated Image images = 1 { repo_tags = 2 } }
		strings(resp, 1, func(img []byte) {
			strings(img, 2, func(tag []byte) { fmt.Println(string(tag)) })
		})
		return
	case "--version": // VersionResponse { runtime_name = 2 }
		strings(resp, 2, func(name []byte) { fmt.Println(string(name)) })
		return
	}
	// PullImageResponse { string image_ref = 1 }
	if _, typ, n := protowire.ConsumeTag(resp); n > 0 && typ == protowire.BytesType {
		if s, m := protowire.ConsumeString(resp[n:]); m > 0 {
			fmt.Println(s)
			return
		}
	}
	fmt.Fprintln(os.Stderr, "cripull: no image_ref in the answer")
	os.Exit(1)
}
