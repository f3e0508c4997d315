package node

import (
	"context"
	"os"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// HostPathVolume creates a PersistentVolume of the given size backed by a directory in the work
// directory, with no storage class: the node has no provisioner, so a claim without a class (a
// StatefulSet's volumeClaimTemplate when no default StorageClass exists) binds to it. A real
// cluster provisions volumes from its StorageClass instead.
func (n *Node) HostPathVolume(ctx context.Context, name, size string) error {
	q, err := resource.ParseQuantity(size)
	if err != nil {
		return err
	}
	dir := filepath.Join(n.Dir, "volumes", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	typ := corev1.HostPathDirectory
	_, err = n.Client.CoreV1().PersistentVolumes().Create(ctx, &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: q},
			AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			PersistentVolumeSource:        corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: dir, Type: &typ}},
		},
	}, metav1.CreateOptions{})
	return err
}
