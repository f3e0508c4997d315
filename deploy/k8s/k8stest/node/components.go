package node

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ports are the loopback ports of the components, all free ones chosen at start.
type ports struct {
	etcdClient, etcdPeer, apiServer, controllerManager, scheduler, kubelet, kubeletHealthz int
}

// pki is what the components authenticate with: paths of files under Dir/pki.
type pki struct {
	ca                      *ca
	caFile                  string
	apiCert, apiKey         string
	cmCert, cmKey           string
	schedCert, schedKey     string
	saKey, saPub            string
	tokens                  string
	cmConfig, schedConfig   string // kubeconfigs
	kubeletConfig           string
	tlsClient               *http.Client // trusts only the node's CA
	admin, kubelet, cm, sch identity
}

// writePKI generates the CA, the serving certificates, the service-account key, one token per
// identity and a kubeconfig per client.
func (n *Node) writePKI() error {
	ps, err := freePorts(7)
	if err != nil {
		return err
	}
	n.ports = ports{ps[0], ps[1], ps[2], ps[3], ps[4], ps[5], ps[6]}
	dir := filepath.Join(n.Dir, "pki")
	c, err := newCA()
	if err != nil {
		return err
	}
	p := pki{ca: c, caFile: filepath.Join(dir, "ca.crt"), tokens: filepath.Join(dir, "tokens.csv")}
	if err := os.WriteFile(p.caFile, c.pem, 0o644); err != nil {
		return err
	}
	// The API server's certificate names what in-cluster clients dial too: the kubernetes
	// Service's first IP and DNS names.
	svcIP := n.Subnets.Services.Addr().Next().AsSlice()
	if p.apiCert, p.apiKey, err = c.serving(dir, APIServer, []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc"}, []net.IP{svcIP}); err != nil {
		return err
	}
	if p.cmCert, p.cmKey, err = c.serving(dir, ControllerManager, nil, nil); err != nil {
		return err
	}
	if p.schedCert, p.schedKey, err = c.serving(dir, Scheduler, nil, nil); err != nil {
		return err
	}
	if p.saKey, p.saPub, err = writeServiceAccountKey(dir); err != nil {
		return err
	}
	// The user names RBAC's bootstrap policy binds (system:kube-controller-manager,
	// system:kube-scheduler) and the Node authorizer recognizes (system:node:NAME in system:nodes).
	p.admin = newIdentity("pouch-admin", "system:masters")
	p.cm = newIdentity("system:kube-controller-manager")
	p.sch = newIdentity("system:kube-scheduler")
	p.kubelet = newIdentity("system:node:"+NodeName, "system:nodes")
	if err := writeTokenFile(p.tokens, []identity{p.admin, p.cm, p.sch, p.kubelet}); err != nil {
		return err
	}
	n.APIServer = "https://127.0.0.1:" + strconv.Itoa(n.ports.apiServer)
	n.Kubeconfig = filepath.Join(dir, "admin.kubeconfig")
	p.cmConfig = filepath.Join(dir, "controller-manager.kubeconfig")
	p.schedConfig = filepath.Join(dir, "scheduler.kubeconfig")
	p.kubeletConfig = filepath.Join(dir, "kubelet.kubeconfig")
	for path, id := range map[string]identity{n.Kubeconfig: p.admin, p.cmConfig: p.cm, p.schedConfig: p.sch, p.kubeletConfig: p.kubelet} {
		if err := writeKubeconfig(path, n.APIServer, c.pem, id); err != nil {
			return err
		}
	}
	pool := x509.NewCertPool()
	pool.AddCert(c.cert)
	p.tlsClient = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 5 * time.Second}
	n.pki = p

	if n.REST, err = clientcmd.BuildConfigFromFlags("", n.Kubeconfig); err != nil {
		return err
	}
	n.REST.QPS, n.REST.Burst = 50, 100
	n.Client, err = kubernetes.NewForConfig(n.REST)
	return err
}

func (n *Node) startEtcd(ctx context.Context, _ string) error {
	client := "http://127.0.0.1:" + strconv.Itoa(n.ports.etcdClient)
	peer := "http://127.0.0.1:" + strconv.Itoa(n.ports.etcdPeer)
	err := n.spawn(Etcd, EtcdBin, "--name=pouch-k8s", "--data-dir="+filepath.Join(n.Dir, "etcd"), "--logger=zap",
		"--listen-client-urls="+client, "--advertise-client-urls="+client,
		"--listen-peer-urls="+peer, "--initial-advertise-peer-urls="+peer, "--initial-cluster=pouch-k8s="+peer)
	if err != nil {
		return err
	}
	return n.waitFor(ctx, Etcd, "etcd healthy", httpGetOK(http.DefaultClient, client+"/health", `{"health":"true"`))
}

func (n *Node) startAPIServer(ctx context.Context, binDir string) error {
	p := n.pki
	// The API server refuses to publish a loopback address as the kubernetes Service's endpoint
	// ("may not be in the loopback range"), so it publishes none: nothing here routes Service IPs.
	err := n.spawn(APIServer, filepath.Join(binDir, APIServer),
		"--etcd-servers=http://127.0.0.1:"+strconv.Itoa(n.ports.etcdClient),
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--endpoint-reconciler-type=none",
		"--secure-port="+strconv.Itoa(n.ports.apiServer),
		"--cert-dir="+filepath.Join(n.Dir, "pki"), "--tls-cert-file="+p.apiCert, "--tls-private-key-file="+p.apiKey,
		"--token-auth-file="+p.tokens, "--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
		"--service-account-issuer=https://kubernetes.default.svc", "--service-account-key-file="+p.saPub,
		"--service-account-signing-key-file="+p.saKey, "--service-cluster-ip-range="+n.Subnets.Services.String(),
		"--allow-privileged=true", "--profiling=false")
	if err != nil {
		return err
	}
	return n.waitFor(ctx, APIServer, "API server ready", func(ctx context.Context) error {
		body, err := n.Client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err != nil {
			return err
		}
		if string(body) != "ok" {
			return fmt.Errorf("/readyz: %q", body)
		}
		return nil
	})
}

func (n *Node) startControllerManager(ctx context.Context, binDir string) error {
	p := n.pki
	err := n.spawn(ControllerManager, filepath.Join(binDir, ControllerManager),
		"--kubeconfig="+p.cmConfig, "--authentication-kubeconfig="+p.cmConfig, "--authorization-kubeconfig="+p.cmConfig,
		"--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(n.ports.controllerManager),
		"--tls-cert-file="+p.cmCert, "--tls-private-key-file="+p.cmKey,
		"--root-ca-file="+p.caFile, "--service-account-private-key-file="+p.saKey,
		"--flex-volume-plugin-dir="+filepath.Join(n.Dir, "controller-manager", "volume-plugins"),
		"--use-service-account-credentials=true", "--leader-elect=false", "--profiling=false")
	if err != nil {
		return err
	}
	url := fmt.Sprintf("https://127.0.0.1:%d/healthz", n.ports.controllerManager)
	return n.waitFor(ctx, ControllerManager, "controller manager healthy", httpGetOK(p.tlsClient, url, "ok"))
}

func (n *Node) startScheduler(ctx context.Context, binDir string) error {
	p := n.pki
	err := n.spawn(Scheduler, filepath.Join(binDir, Scheduler),
		"--kubeconfig="+p.schedConfig, "--authentication-kubeconfig="+p.schedConfig, "--authorization-kubeconfig="+p.schedConfig,
		"--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(n.ports.scheduler),
		"--tls-cert-file="+p.schedCert, "--tls-private-key-file="+p.schedKey, "--leader-elect=false", "--profiling=false")
	if err != nil {
		return err
	}
	url := fmt.Sprintf("https://127.0.0.1:%d/healthz", n.ports.scheduler)
	return n.waitFor(ctx, Scheduler, "scheduler healthy", httpGetOK(p.tlsClient, url, "ok"))
}

// startContainerd starts the private containerd and waits until its CRI plugin answers: a CRI
// plugin that failed to load leaves containerd running without it, which only a CRI call shows.
func (n *Node) startContainerd(ctx context.Context, _ string) error {
	cfg := filepath.Join(n.Dir, "containerd.toml")
	if err := os.WriteFile(cfg, []byte(containerdConfig(n.Dir, n.SandboxImage)), 0o644); err != nil {
		return err
	}
	conflist := filepath.Join(n.Dir, "cni", "net.d", "10-"+NetworkName+".conflist")
	if err := os.WriteFile(conflist, []byte(cniConflist(n.Dir, n.Subnets)), 0o644); err != nil {
		return err
	}
	if err := n.spawn(Containerd, ContainerdBin, "--config", cfg); err != nil {
		return err
	}
	return n.waitFor(ctx, Containerd, "containerd's CRI plugin", func(ctx context.Context) error {
		if _, err := os.Stat(n.ContainerdSocket); err != nil {
			return err
		}
		rt, conn, err := n.cri()
		if err != nil {
			return err
		}
		defer conn.Close()
		v, err := rt.Version(ctx, &criapi.VersionRequest{})
		if err != nil {
			return err
		}
		n.logf("containerd: %s %s, CRI %s", v.RuntimeName, v.RuntimeVersion, v.RuntimeApiVersion)
		return nil
	})
}

// startKubelet starts the kubelet and waits until it has registered the node.
func (n *Node) startKubelet(ctx context.Context, binDir string) error {
	cfg := filepath.Join(n.Dir, "kubelet.yaml")
	if err := os.WriteFile(cfg, []byte(kubeletConfig(n.Dir, n.ports.kubelet, n.ports.kubeletHealthz)), 0o644); err != nil {
		return err
	}
	err := n.spawn(Kubelet, filepath.Join(binDir, Kubelet), "--config="+cfg, "--kubeconfig="+n.pki.kubeletConfig,
		"--root-dir="+filepath.Join(n.Dir, "kubelet"), "--cert-dir="+filepath.Join(n.Dir, "kubelet", "pki"),
		"--hostname-override="+NodeName, "--node-ip=127.0.0.1", "--v=2")
	if err != nil {
		return err
	}
	return n.waitFor(ctx, Kubelet, "node "+NodeName+" registered", func(ctx context.Context) error {
		_, err := n.Client.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
		return err
	})
}
