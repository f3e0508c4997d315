package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/pouch-p2p/pouch/internal/cliutil"
	"github.com/pouch-p2p/pouch/internal/snapi"
	"github.com/pouch-p2p/pouch/supernode/preheat"
)

// adminFlags reach a running supernode's operator API.
func adminFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "server", Value: "http://127.0.0.1:8002", EnvVars: []string{"POUCH_SUPERNODE"}, Usage: "the supernode's API"},
		&cli.StringFlag{Name: "admin-token", EnvVars: []string{"POUCH_ADMIN_TOKEN"}, Usage: "the supernode's admin token (none: only from the supernode's own host)"},
		&cli.StringFlag{Name: "supernode-ca", Usage: "PEM bundle of the CAs trusted for an https --server, instead of the system's"},
	}
}

func preheatCommand() *cli.Command {
	return &cli.Command{
		Name:      "preheat",
		Usage:     "warm an image or a file in the cluster before a rollout",
		ArgsUsage: "REF|URL",
		UsageText: "supernode preheat [--server URL] [--scope seed|all-peers] [--platform OS/ARCH] [--username U --password-stdin] [--wait] REF|URL\n" +
			"supernode preheat list [--server URL]\n" +
			"supernode preheat cancel [--server URL] ID",
		Description: `Creates a preheat job on the supernode and prints its id. An image reference
(registry.example:5000/app/web:1.4) has its config and layers warmed; an http(s) URL is one file.
Scope seed (the default) puts the content on the supernode's seed; all-peers puts it on every
dfdaemon registered with the supernode when the job starts.

Credentials for a private registry come from --username and --password-stdin, else from
~/.docker/config.json (or $DOCKER_CONFIG) for that registry; a file's from --header. The supernode
uses them for this job alone and never stores or shows them.

With --wait it shows each layer's progress until the job ends, and exits 0 if the job succeeded,
1 with the reason if it failed.`,
		Flags: append(adminFlags(),
			&cli.StringFlag{Name: "scope", Value: string(snapi.ScopeSeed), Usage: "seed or all-peers"},
			&cli.StringFlag{Name: "platform", Usage: "the platform of a multi-platform image, os/arch[/variant] (default: the supernode's)"},
			&cli.StringFlag{Name: "type", Usage: "image or file (default: file for an http(s) URL, else image)"},
			&cli.StringFlag{Name: "username", Usage: "registry user (the password is read from stdin, see --password-stdin)"},
			&cli.BoolFlag{Name: "password-stdin", Usage: "read the registry password from stdin"},
			&cli.StringSliceFlag{Name: "header", Aliases: []string{"H"}, Usage: "header sent to the origin, 'Name: value' (repeatable)"},
			&cli.BoolFlag{Name: "wait", Usage: "show the progress until the job ends; the exit code says how it ended"},
			&cli.DurationFlag{Name: "interval", Value: time.Second, Usage: "with --wait: how often to ask the supernode"},
		),
		Action: preheatCreate,
		Subcommands: []*cli.Command{
			{Name: "list", Usage: "list the preheat jobs, newest first", Flags: adminFlags(), Action: preheatList},
			{Name: "cancel", Usage: "cancel a running preheat job", ArgsUsage: "ID", Flags: adminFlags(), Action: preheatCancel},
		},
	}
}

func adminClient(c *cli.Context) (*snapi.AdminClient, error) {
	if err := cliutil.URLs(c.String("server")); err != nil {
		return nil, fmt.Errorf("--server: %w", err)
	}
	cl := snapi.NewAdminClient(c.String("server"), c.String("admin-token"))
	pool, err := snapi.LoadCA(c.String("supernode-ca"))
	if err != nil || pool == nil {
		return cl, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	cl.HTTP.Transport = tr
	return cl, nil
}

func preheatCreate(c *cli.Context) error {
	if c.NArg() != 1 {
		return fmt.Errorf("preheat: name exactly one image reference or URL (got %d arguments); flags go before it", c.NArg())
	}
	req := snapi.PreheatRequest{
		URL: c.Args().First(), Type: snapi.PreheatType(c.String("type")), Scope: snapi.PreheatScope(c.String("scope")),
		Platform: c.String("platform"), Username: c.String("username"),
	}
	for _, h := range c.StringSlice("header") {
		k, v, ok := strings.Cut(h, ":")
		if !ok || strings.TrimSpace(k) == "" {
			return fmt.Errorf("--header %q: want 'Name: value'", h)
		}
		if req.Headers == nil {
			req.Headers = map[string]string{}
		}
		req.Headers[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	if err := credentials(c, &req); err != nil {
		return err
	}
	cl, err := adminClient(c)
	if err != nil {
		return err
	}
	job, err := cl.CreatePreheat(c.Context, req)
	if err != nil {
		return err
	}
	fmt.Fprintln(c.App.Writer, job.ID)
	if !c.Bool("wait") {
		return nil
	}
	view := newProgressView(c.App.ErrWriter, isTerminal(c.App.ErrWriter))
	job, err = waitJob(c.Context, cl, job.ID, c.Duration("interval"), view.show, func(err error) {
		fmt.Fprintf(c.App.ErrWriter, "supernode unreachable, still waiting: %v\n", err)
	})
	if err != nil {
		if c.Context.Err() != nil {
			return fmt.Errorf("stopped waiting; job %s goes on (supernode preheat list)", job.ID)
		}
		return err
	}
	if job.State == snapi.StateFailed {
		return fmt.Errorf("preheat job %s failed: %s", job.ID, job.Error)
	}
	return nil
}

// credentials fills the registry credentials of an image job: --username with the password on
// stdin, else the docker config's entry for the image's registry, if any.
func credentials(c *cli.Context, req *snapi.PreheatRequest) error {
	if c.Bool("password-stdin") {
		if req.Username == "" {
			return errors.New("--password-stdin needs --username")
		}
		line, err := bufio.NewReader(io.LimitReader(os.Stdin, 64<<10)).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read the password from stdin: %w", err)
		}
		req.Password = strings.TrimRight(line, "\r\n")
		if req.Password == "" {
			return errors.New("--password-stdin: stdin gave an empty password")
		}
		return nil
	}
	if req.Username != "" {
		return errors.New("--username needs --password-stdin (a password on the command line would be seen by every user of the host)")
	}
	if req.Type == snapi.PreheatFile || strings.HasPrefix(req.URL, "http://") || strings.HasPrefix(req.URL, "https://") {
		return nil
	}
	ref, err := preheat.ParseRef(req.URL)
	if err != nil {
		return err
	}
	reg, err := name.NewRegistry(reference.Domain(ref))
	if err != nil {
		return nil // the supernode names what is wrong with the reference
	}
	auth, err := authn.DefaultKeychain.Resolve(reg)
	if err != nil {
		return fmt.Errorf("docker config: %w", err)
	}
	cfg, err := auth.Authorization()
	if err != nil {
		return fmt.Errorf("docker config: credentials for %s: %w", reg, err)
	}
	if cfg.Username != "" && cfg.Password != "" {
		req.Username, req.Password = cfg.Username, cfg.Password
	}
	return nil
}

// waitJob polls the job until it ends, calling show with every answer. A supernode that
// cannot be reached (it is restarting: the job resumes) is asked again; unreachable is called
// once per outage.
func waitJob(ctx context.Context, cl *snapi.AdminClient, id string, every time.Duration, show func(snapi.PreheatJob), unreachable func(error)) (snapi.PreheatJob, error) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	job, down := snapi.PreheatJob{ID: id}, false
	for {
		got, err := cl.Preheat(ctx, id)
		switch {
		case errors.Is(err, snapi.ErrUnavailable) && ctx.Err() == nil:
			if !down {
				unreachable(err)
			}
			down = true
		case err != nil:
			return job, err
		default:
			job, down = got, false
			show(job)
			if job.State.Final() {
				return job, nil
			}
		}
		select {
		case <-ctx.Done():
			return job, ctx.Err()
		case <-tick.C:
		}
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func preheatList(c *cli.Context) error {
	cl, err := adminClient(c)
	if err != nil {
		return err
	}
	jobs, err := cl.Preheats(c.Context)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tSCOPE\tTASKS\tCREATED\tURL\tERROR")
	for _, j := range jobs {
		done := 0
		for _, t := range j.Progress.Tasks {
			if t.State == snapi.StateSuccess {
				done++
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%s\t%s\t%s\n", j.ID, j.State, j.Scope, done, len(j.Progress.Tasks),
			j.CreatedAt.Local().Format(time.DateTime), j.URL, j.Error)
	}
	return tw.Flush()
}

func preheatCancel(c *cli.Context) error {
	if c.NArg() != 1 {
		return errors.New("cancel: name the job id")
	}
	cl, err := adminClient(c)
	if err != nil {
		return err
	}
	job, err := cl.CancelPreheat(c.Context, c.Args().First())
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "%s %s: %s\n", job.ID, job.State, job.Error)
	return nil
}
