// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/mount"
	"github.com/containerd/containerd/snapshots"
	"github.com/containerd/containerd/snapshots/storage"
	"github.com/containerd/continuity/fs"
)

// Labels containerd passes to a snapshotter (snapshots.FilterInheritedLabels
// keeps containerd.io/snapshot.ref and the containerd.io/snapshot/ prefix).
const (
	labelTarget   = "containerd.io/snapshot.ref"
	labelImageRef = "containerd.io/snapshot/cri.image-ref"
	labelManifest = "containerd.io/snapshot/cri.manifest-digest"
	// what skiff convert/push write on each layer descriptor
	labelSkiffLayer = "containerd.io/snapshot/skiff.layer"
	// on the committed remote snapshots: what they are
	labelRemote = "containerd.io/snapshot/skiff.remote"
)

// A snapshot directory is snapshots/<id>/{fs,work}; a skiff layer's also
// has skiff.json (layerInfo). A bootstrap's fs is the EROFS mount that
// skiffd serves; a data blob's fs stays empty and is left out of every
// overlay (its bytes are reached through the bootstrap's mount).
type layerInfo struct {
	Layer string `json:"layer"` // "blob" or "bootstrap"
	Image string `json:"image"` // what skiff mount was given
}

const erofsMagic = 0xE0F5E1E2

type snapshotter struct {
	root  string
	ms    *storage.MetaStore
	skiff *skiffCLI
	// held around every skiff mount and umount: two containers started
	// on an image whose mount is gone (after a reboot) must not both
	// mount it, one on top of the other
	mountMu sync.Mutex
}

func newSnapshotter(root string, sk *skiffCLI) (*snapshotter, error) {
	if err := os.MkdirAll(filepath.Join(root, "snapshots"), 0700); err != nil {
		return nil, err
	}
	ms, err := storage.NewMetaStore(filepath.Join(root, "metadata.db"))
	if err != nil {
		return nil, err
	}
	o := &snapshotter{root: root, ms: ms, skiff: sk}
	// behind the server: a slow registry must not keep containerd from
	// every other snapshot (mounts() waits for what it needs)
	go o.restore()
	return o, nil
}

func (o *snapshotter) dir(id string) string    { return filepath.Join(o.root, "snapshots", id) }
func (o *snapshotter) fsPath(id string) string { return filepath.Join(o.dir(id), "fs") }

func (o *snapshotter) layer(id string) *layerInfo {
	b, err := os.ReadFile(filepath.Join(o.dir(id), "skiff.json"))
	if err != nil {
		return nil
	}
	var li layerInfo
	if json.Unmarshal(b, &li) != nil || (li.Layer != "blob" && li.Layer != "bootstrap") {
		return nil
	}
	return &li
}

func isErofs(path string) bool {
	var st syscall.Statfs_t
	return syscall.Statfs(path, &st) == nil && uint32(st.Type) == erofsMagic
}

// ensureMounted: a bootstrap's mount is gone after a reboot (or an
// unmount by hand): mount it again before anything stacks on it, so that
// no container ever starts on an empty directory.
func (o *snapshotter) ensureMounted(ctx context.Context, id string) error {
	li := o.layer(id)
	if li == nil || li.Layer != "bootstrap" {
		return nil
	}
	o.mountMu.Lock()
	defer o.mountMu.Unlock()
	if isErofs(o.fsPath(id)) {
		return nil
	}
	log.Printf("snapshot %s: %s is not mounted: mounting it again", id, li.Image)
	return o.skiff.mount(ctx, li.Image, o.fsPath(id))
}

// restore runs at start: the snapshots containerd still has keep their
// mounts (running containers use them: never unmount here); those that
// are gone (a reboot) are mounted again.
func (o *snapshotter) restore() {
	ctx, t, err := o.ms.TransactionContext(context.Background(), false)
	if err != nil {
		return
	}
	ids, err := storage.IDMap(ctx)
	t.Rollback()
	if err != nil {
		return
	}
	for id := range ids {
		if err := o.ensureMounted(context.Background(), id); err != nil {
			log.Printf("snapshot %s: %v (tried again when a container needs it)", id, err)
		}
	}
}

func (o *snapshotter) Stat(ctx context.Context, key string) (snapshots.Info, error) {
	ctx, t, err := o.ms.TransactionContext(ctx, false)
	if err != nil {
		return snapshots.Info{}, err
	}
	defer t.Rollback()
	_, info, _, err := storage.GetInfo(ctx, key)
	return info, err
}

func (o *snapshotter) Update(ctx context.Context, info snapshots.Info, fieldpaths ...string) (snapshots.Info, error) {
	ctx, t, err := o.ms.TransactionContext(ctx, true)
	if err != nil {
		return snapshots.Info{}, err
	}
	info, err = storage.UpdateInfo(ctx, info, fieldpaths...)
	if err != nil {
		t.Rollback()
		return snapshots.Info{}, err
	}
	return info, t.Commit()
}

func (o *snapshotter) Usage(ctx context.Context, key string) (snapshots.Usage, error) {
	ctx, t, err := o.ms.TransactionContext(ctx, false)
	if err != nil {
		return snapshots.Usage{}, err
	}
	id, info, usage, err := storage.GetInfo(ctx, key)
	t.Rollback()
	if err != nil {
		return snapshots.Usage{}, err
	}
	if info.Kind == snapshots.KindActive {
		du, err := fs.DiskUsage(ctx, o.fsPath(id))
		if err != nil {
			return snapshots.Usage{}, err
		}
		usage = snapshots.Usage(du)
	}
	return usage, nil
}

func (o *snapshotter) Walk(ctx context.Context, fn snapshots.WalkFunc, filters ...string) error {
	ctx, t, err := o.ms.TransactionContext(ctx, false)
	if err != nil {
		return err
	}
	defer t.Rollback()
	return storage.WalkInfo(ctx, fn, filters...)
}

func (o *snapshotter) Mounts(ctx context.Context, key string) ([]mount.Mount, error) {
	ctx, t, err := o.ms.TransactionContext(ctx, false)
	if err != nil {
		return nil, err
	}
	s, err := storage.GetSnapshot(ctx, key)
	t.Rollback()
	if err != nil {
		return nil, fmt.Errorf("snapshot %q: %w", key, err)
	}
	return o.mounts(ctx, s)
}

func (o *snapshotter) Prepare(ctx context.Context, key, parent string, opts ...snapshots.Opt) ([]mount.Mount, error) {
	var base snapshots.Info
	for _, opt := range opts {
		if err := opt(&base); err != nil {
			return nil, err
		}
	}
	target := base.Labels[labelTarget]
	if kind := base.Labels[labelSkiffLayer]; target != "" && kind != "" {
		return nil, o.prepareRemote(ctx, key, parent, target, kind, base.Labels, opts)
	}
	return o.create(ctx, snapshots.KindActive, key, parent, opts)
}

func (o *snapshotter) View(ctx context.Context, key, parent string, opts ...snapshots.Opt) ([]mount.Mount, error) {
	return o.create(ctx, snapshots.KindView, key, parent, opts)
}

func (o *snapshotter) Commit(ctx context.Context, name, key string, opts ...snapshots.Opt) error {
	ctx, t, err := o.ms.TransactionContext(ctx, true)
	if err != nil {
		return err
	}
	id, _, _, err := storage.GetInfo(ctx, key)
	if err != nil {
		t.Rollback()
		return err
	}
	du, err := fs.DiskUsage(ctx, o.fsPath(id))
	if err != nil {
		t.Rollback()
		return err
	}
	if _, err := storage.CommitActive(ctx, key, name, snapshots.Usage(du), opts...); err != nil {
		t.Rollback()
		return fmt.Errorf("commit %q as %q: %w", key, name, err)
	}
	return t.Commit()
}

// Remove: the record goes first (storage.Remove refuses a snapshot with
// children, so nothing stacks on it), then, outside the transaction, a
// bootstrap is unmounted and unregistered from skiffd. If that fails the
// directory stays, and Cleanup (containerd's garbage collection) tries
// again.
func (o *snapshotter) Remove(ctx context.Context, key string) error {
	ctx, t, err := o.ms.TransactionContext(ctx, true)
	if err != nil {
		return err
	}
	id, _, err := storage.Remove(ctx, key)
	if err != nil {
		t.Rollback()
		return fmt.Errorf("remove %q: %w", key, err)
	}
	if err := t.Commit(); err != nil {
		return err
	}
	if err := o.release(ctx, id); err != nil {
		log.Printf("remove %q (snapshot %s): %v (cleanup tries again)", key, id, err)
		return nil
	}
	return os.RemoveAll(o.dir(id))
}

// release undoes what skiff mounted for snapshot id, if anything: the
// mount and skiffd's registration, each whether or not the other is
// still there (a reboot leaves the registration without the mount; a
// umount whose unregistration failed, the other way round).
func (o *snapshotter) release(ctx context.Context, id string) error {
	li := o.layer(id)
	if li == nil || li.Layer != "bootstrap" {
		return nil
	}
	o.mountMu.Lock()
	defer o.mountMu.Unlock()
	fsd := o.fsPath(id)
	err := o.skiff.umount(ctx, fsd)
	if err != nil && strings.Contains(err.Error(), "no skiff image is mounted there") {
		err = nil
	}
	if err == nil && isErofs(fsd) {
		// mounted, but skiffd does not know it: nothing serves it
		err = syscall.Unmount(fsd, 0)
	}
	return err
}

// Cleanup removes the directories no snapshot owns (a crash between the
// record and the directory).
func (o *snapshotter) Cleanup(ctx context.Context) error {
	// the record and the directory list read under one write lock: a
	// snapshot made meanwhile (its directory is renamed into place
	// inside its record's transaction) is never taken for an orphan
	tctx, t, err := o.ms.TransactionContext(ctx, true)
	if err != nil {
		return err
	}
	ids, err := storage.IDMap(tctx)
	var ents []os.DirEntry
	if err == nil {
		ents, err = os.ReadDir(filepath.Join(o.root, "snapshots"))
	}
	t.Rollback()
	if err != nil {
		return err
	}
	for _, e := range ents {
		if _, ok := ids[e.Name()]; ok {
			continue
		}
		if err := o.release(ctx, e.Name()); err != nil {
			log.Printf("cleanup: %s: %v", e.Name(), err)
			continue
		}
		if isErofs(o.fsPath(e.Name())) {
			continue
		}
		if err := os.RemoveAll(o.dir(e.Name())); err != nil {
			log.Printf("cleanup: %v", err)
		}
	}
	return nil
}

func (o *snapshotter) Close() error { return o.ms.Close() }

// create makes a snapshot record and its directories. The directory is
// made under a temporary name and renamed once the record exists, so a
// crash leaves at most a stray new-* directory.
func (o *snapshotter) create(ctx context.Context, kind snapshots.Kind, key, parent string,
	opts []snapshots.Opt) ([]mount.Mount, error) {
	s, err := o.record(ctx, kind, key, parent, opts, nil)
	if err != nil {
		return nil, err
	}
	return o.mounts(ctx, s)
}

func (o *snapshotter) record(ctx context.Context, kind snapshots.Kind, key, parent string,
	opts []snapshots.Opt, li *layerInfo) (storage.Snapshot, error) {
	// the directory is made inside the transaction: Cleanup, which holds
	// the write lock, never sees one half made
	ctx, t, err := o.ms.TransactionContext(ctx, true)
	if err != nil {
		return storage.Snapshot{}, err
	}
	td, err := os.MkdirTemp(filepath.Join(o.root, "snapshots"), "new-")
	if err != nil {
		t.Rollback()
		return storage.Snapshot{}, err
	}
	keep := false
	defer func() {
		if !keep {
			os.RemoveAll(td)
		}
	}()
	if err := os.Mkdir(filepath.Join(td, "fs"), 0755); err != nil {
		t.Rollback()
		return storage.Snapshot{}, err
	}
	if kind == snapshots.KindActive {
		if err := os.Mkdir(filepath.Join(td, "work"), 0711); err != nil {
			t.Rollback()
			return storage.Snapshot{}, err
		}
	}
	if li != nil {
		b, _ := json.Marshal(li)
		if err := os.WriteFile(filepath.Join(td, "skiff.json"), b, 0600); err != nil {
			t.Rollback()
			return storage.Snapshot{}, err
		}
	}
	s, err := storage.CreateSnapshot(ctx, kind, key, parent, opts...)
	if err != nil {
		t.Rollback()
		return storage.Snapshot{}, fmt.Errorf("create snapshot %q: %w", key, err)
	}
	if len(s.ParentIDs) > 0 && li == nil {
		// the new root belongs to whoever owns the parent's
		if st, err := os.Stat(o.fsPath(s.ParentIDs[0])); err == nil {
			sys := st.Sys().(*syscall.Stat_t)
			os.Lchown(filepath.Join(td, "fs"), int(sys.Uid), int(sys.Gid))
		}
	}
	if err := os.Rename(td, o.dir(s.ID)); err != nil {
		t.Rollback()
		return storage.Snapshot{}, err
	}
	keep = true
	if err := t.Commit(); err != nil {
		os.RemoveAll(o.dir(s.ID))
		return storage.Snapshot{}, err
	}
	return s, nil
}

// prepareRemote: a skiff layer needs no download. A data blob is
// committed at once, empty; the bootstrap is mounted through skiffd
// first. containerd learns from ErrAlreadyExists that the layer is there.
func (o *snapshotter) prepareRemote(ctx context.Context, key, parent, target, kind string,
	labels map[string]string, opts []snapshots.Opt) error {
	// the layer is there already (another namespace or pull made it):
	// containerd links it; no second mount
	if _, err := o.Stat(ctx, target); err == nil {
		return fmt.Errorf("target snapshot %q: %w", target, errdefs.ErrAlreadyExists)
	}
	li := &layerInfo{Layer: kind}
	switch kind {
	case "blob":
	case "bootstrap":
		img, err := imageRef(labels)
		if err != nil {
			return err
		}
		li.Image = img
	default:
		return fmt.Errorf("layer %s: unknown skiff layer kind %q", target, kind)
	}
	s, err := o.record(ctx, snapshots.KindActive, key, parent, opts, li)
	if err != nil {
		return err
	}
	if kind == "bootstrap" {
		o.mountMu.Lock()
		err := o.skiff.mount(ctx, li.Image, o.fsPath(s.ID))
		o.mountMu.Unlock()
		if err != nil {
			// a mount cut off by its timeout may have registered
			o.release(ctx, s.ID)
			o.drop(ctx, key, s.ID)
			return fmt.Errorf("lazy pull of %s: %w", li.Image, err)
		}
	}
	ctx2, t, err := o.ms.TransactionContext(ctx, true)
	if err == nil {
		opts = append(opts, snapshots.WithLabels(map[string]string{labelRemote: kind}))
		if _, err = storage.CommitActive(ctx2, key, target, snapshots.Usage{}, opts...); err != nil {
			t.Rollback()
		} else {
			err = t.Commit()
		}
	}
	if err != nil {
		// a racing pull committed the same layer first: it is there
		o.release(ctx, s.ID)
		o.drop(ctx, key, s.ID)
		if errdefs.IsAlreadyExists(err) {
			return fmt.Errorf("target snapshot %q: %w", target, errdefs.ErrAlreadyExists)
		}
		return err
	}
	log.Printf("layer %s: %s, nothing downloaded (snapshot %s)", target, kind, s.ID)
	return fmt.Errorf("target snapshot %q: %w", target, errdefs.ErrAlreadyExists)
}

// drop forgets an active snapshot that did not come to be.
func (o *snapshotter) drop(ctx context.Context, key, id string) {
	ctx, t, err := o.ms.TransactionContext(ctx, true)
	if err == nil {
		if _, _, err = storage.Remove(ctx, key); err != nil {
			t.Rollback()
		} else {
			t.Commit()
		}
	}
	if err != nil {
		log.Printf("snapshot %s: %v", key, err)
	}
	os.RemoveAll(o.dir(id))
}

// mounts: an overlay of the snapshot's ancestors, without the skiff data
// blobs (empty); what skiff mounted is mounted again first if it is gone.
func (o *snapshotter) mounts(ctx context.Context, s storage.Snapshot) ([]mount.Mount, error) {
	var lowers []string
	for _, pid := range s.ParentIDs {
		li := o.layer(pid)
		if li != nil && li.Layer == "blob" {
			continue
		}
		if err := o.ensureMounted(ctx, pid); err != nil {
			return nil, fmt.Errorf("the image's skiff mount is gone and could not be mounted again: %w", err)
		}
		lowers = append(lowers, o.fsPath(pid))
	}
	ro := "ro"
	if s.Kind == snapshots.KindActive {
		ro = "rw"
	}
	if len(lowers) == 0 {
		return []mount.Mount{{Source: o.fsPath(s.ID), Type: "bind", Options: []string{ro, "rbind"}}}, nil
	}
	if s.Kind != snapshots.KindActive && len(lowers) == 1 {
		return []mount.Mount{{Source: lowers[0], Type: "bind", Options: []string{"ro", "rbind"}}}, nil
	}
	var options []string
	if s.Kind == snapshots.KindActive {
		options = append(options, "workdir="+filepath.Join(o.dir(s.ID), "work"),
			"upperdir="+o.fsPath(s.ID))
	}
	options = append(options, "lowerdir="+strings.Join(lowers, ":"))
	return []mount.Mount{{Type: "overlay", Source: "overlay", Options: options}}, nil
}

var errNoImage = errors.New("the layer's labels do not name its image: containerd passes " +
	"them only when the pull asks (skiff-snapshotter pull, or the CRI plugin with " +
	"disable_snapshot_annotations = false)")
