package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/amp"
)

// Usage describes the admin verbs.
const Usage = `Admin verbs (they talk to a running server's API):
  orrery workspaces create [--alias A] | list | describe ID | delete ID
  orrery keys create (--policy-file F | --workspace ID --access ACCESS) | list | revoke KEY_ID
  orrery tokens create (--policy-file F | --workspace ID --access ACCESS) [--description D] | list | revoke TOKEN_ID
  orrery users create --name N --role viewer|editor|admin [--workspaces ws-a,ws-b|*] | list | delete NAME | passwd NAME
    (web UI users; the password is generated and printed once, or read from $ORRERY_USER_PASSWORD)

ACCESS is remote-write, query, read-write or admin (all actions on the workspace).

Common flags: --url (default $ORRERY_URL or http://127.0.0.1:9090), --region (default $AWS_REGION or us-east-1).
Credentials, first found: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, ORRERY_ADMIN_ACCESS_KEY_ID/ORRERY_ADMIN_SECRET_ACCESS_KEY
(requests are signed with SigV4), ORRERY_TOKEN (a bearer token); none for a server run with --auth=none.
`

// Run runs an admin verb (args[0] is "workspaces", "keys" or "tokens") and
// returns the process exit code.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) < 2 {
		fmt.Fprint(stderr, Usage)
		return 2
	}
	noun, verb := args[0], args[1]
	switch verb {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, Usage)
		return 0
	}
	fs := flag.NewFlagSet("orrery "+noun+" "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &Client{}
	url := getenv("ORRERY_URL")
	if url == "" {
		url = "http://127.0.0.1:9090"
	}
	region := getenv("AWS_REGION")
	if region == "" {
		region = getenv("AWS_DEFAULT_REGION")
	}
	if region == "" {
		region = "us-east-1"
	}
	fs.StringVar(&c.URL, "url", url, "the server's URL")
	fs.StringVar(&c.Region, "region", region, "the region requests are signed for")
	alias := fs.String("alias", "", "workspace alias (workspaces create)")
	policyFile := fs.String("policy-file", "", "IAM-style policy document (keys/tokens create)")
	ws := fs.String("workspace", "", "workspace id the credential is for (keys/tokens create, with --access)")
	access := fs.String("access", "", "remote-write, query, read-write or admin (keys/tokens create, with --workspace)")
	desc := fs.String("description", "", "what the token is for (tokens create)")
	name := fs.String("name", "", "user name (users create)")
	role := fs.String("role", "", "viewer, editor or admin (users create)")
	userWS := fs.String("workspaces", "", "comma-separated workspace ids the user may see, * for all (users create)")
	if err := fs.Parse(interleave(args[2:])); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stderr, "\n"+Usage)
			return 0
		}
		return 2
	}
	c.KeyID, c.Secret = getenv("AWS_ACCESS_KEY_ID"), getenv("AWS_SECRET_ACCESS_KEY")
	if c.KeyID == "" || c.Secret == "" {
		c.KeyID, c.Secret = getenv("ORRERY_ADMIN_ACCESS_KEY_ID"), getenv("ORRERY_ADMIN_SECRET_ACCESS_KEY")
	}
	if c.KeyID == "" || c.Secret == "" {
		c.KeyID, c.Secret = "", ""
		c.Token = getenv("ORRERY_TOKEN")
	}
	rest := fs.Args()
	var err error
	switch noun + " " + verb {
	case "workspaces create":
		err = createWorkspace(ctx, c, *alias, stdout)
	case "workspaces list":
		err = listWorkspaces(ctx, c, stdout)
	case "workspaces describe":
		err = withArg(rest, "workspace id", func(id string) error { return describeWorkspace(ctx, c, id, stdout) })
	case "workspaces delete":
		err = withArg(rest, "workspace id", func(id string) error {
			_, err := c.AMP().DeleteWorkspace(ctx, &amp.DeleteWorkspaceInput{WorkspaceId: aws.String(id)})
			if err == nil {
				fmt.Fprintf(stdout, "deleting %s\n", id)
			}
			return err
		})
	case "keys create", "tokens create":
		var doc json.RawMessage
		if doc, err = policyDocument(*policyFile, *ws, *access); err == nil {
			err = createCredential(ctx, c, noun, doc, *desc, stdout)
		}
	case "keys list", "tokens list":
		err = listCredentials(ctx, c, noun, stdout)
	case "keys revoke", "tokens revoke":
		path := map[string]string{"keys": "/orrery/v1/accesskeys/", "tokens": "/orrery/v1/tokens/"}[noun]
		err = withArg(rest, strings.TrimSuffix(noun, "s")+" id", func(id string) error {
			err := c.Do(ctx, "DELETE", path+id, nil, nil)
			if err == nil {
				fmt.Fprintf(stdout, "revoked %s\n", id)
			}
			return err
		})
	case "users create":
		err = createUser(ctx, c, *name, *role, *userWS, getenv("ORRERY_USER_PASSWORD"), stdout)
	case "users list":
		err = listUsers(ctx, c, stdout)
	case "users delete":
		err = withArg(rest, "user name", func(n string) error {
			err := c.Do(ctx, "DELETE", "/orrery/v1/users/"+n, nil, nil)
			if err == nil {
				fmt.Fprintf(stdout, "deleted %s\n", n)
			}
			return err
		})
	case "users passwd":
		err = withArg(rest, "user name", func(n string) error {
			return passwd(ctx, c, n, getenv("ORRERY_USER_PASSWORD"), stdout)
		})
	default:
		fmt.Fprintf(stderr, "orrery: unknown command %q\n\n%s", noun+" "+verb, Usage)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "orrery %s %s: %v\n", noun, verb, err)
		if errors.Is(err, syscall.ECONNREFUSED) {
			fmt.Fprintf(stderr, "orrery: nothing listens at %s; if the server listens elsewhere (orrery server --listen), name it with --url or ORRERY_URL\n", c.URL)
		}
		return 1
	}
	return 0
}

// interleave moves positional arguments after the flags, so that
// `revoke ID --url U` parses like `revoke --url U ID`.
func interleave(args []string) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			pos = append(pos, args[i+1:]...)
			i = len(args)
		case strings.HasPrefix(a, "-"):
			flags = append(flags, a)
			if !strings.Contains(a, "=") && i+1 < len(args) {
				flags = append(flags, args[i+1])
				i++
			}
		default:
			pos = append(pos, a)
		}
	}
	return append(flags, pos...)
}

func withArg(rest []string, what string, f func(string) error) error {
	if len(rest) != 1 {
		return fmt.Errorf("give exactly one %s", what)
	}
	return f(rest[0])
}

// Actions each access level grants on a workspace.
var accessActions = map[string][]string{
	"remote-write": {"aps:RemoteWrite"},
	"query":        {"aps:QueryMetrics", "aps:GetLabels", "aps:GetSeries", "aps:GetMetricMetadata"},
	"read-write":   {"aps:RemoteWrite", "aps:QueryMetrics", "aps:GetLabels", "aps:GetSeries", "aps:GetMetricMetadata"},
	"admin":        {"aps:*"},
}

// policyDocument reads a policy file, or builds a least-privilege policy
// for one workspace. The server validates either.
func policyDocument(file, ws, access string) (json.RawMessage, error) {
	switch {
	case file != "" && (ws != "" || access != ""):
		return nil, errors.New("give either --policy-file or --workspace with --access, not both")
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("read policy: %w", err)
		}
		if !json.Valid(b) {
			return nil, fmt.Errorf("policy file %s is not JSON", file)
		}
		return b, nil
	case ws == "" || access == "":
		return nil, errors.New("give --policy-file, or --workspace and --access (remote-write, query, read-write, admin)")
	}
	actions, ok := accessActions[access]
	if !ok {
		return nil, fmt.Errorf("--access %q: use remote-write, query, read-write or admin", access)
	}
	// Rule groups namespaces and anomaly detectors are resources of their
	// own (rulegroupsnamespace/ID/NAME, anomalydetector/ID/DETECTOR): admin
	// access means the whole workspace, them included.
	resources := []string{"arn:aws:aps:*:*:workspace/" + ws}
	if access == "admin" {
		resources = append(resources, "arn:aws:aps:*:*:rulegroupsnamespace/"+ws+"/*", "arn:aws:aps:*:*:anomalydetector/"+ws+"/*")
	}
	doc := map[string]any{"Version": "2012-10-17", "Statement": []any{map[string]any{
		"Effect": "Allow", "Action": actions, "Resource": resources}}}
	return json.Marshal(doc)
}

func createWorkspace(ctx context.Context, c *Client, alias string, stdout io.Writer) error {
	in := &amp.CreateWorkspaceInput{}
	if alias != "" {
		in.Alias = aws.String(alias)
	}
	out, err := c.AMP().CreateWorkspace(ctx, in)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s\n", aws.ToString(out.WorkspaceId))
	return nil
}

func listWorkspaces(ctx context.Context, c *Client, stdout io.Writer) error {
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "WORKSPACE\tALIAS\tSTATUS\tCREATED")
	p := amp.NewListWorkspacesPaginator(c.AMP(), &amp.ListWorkspacesInput{})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return err
		}
		for _, w := range page.Workspaces {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", aws.ToString(w.WorkspaceId), aws.ToString(w.Alias), w.Status.StatusCode,
				aws.ToTime(w.CreatedAt).UTC().Format(time.RFC3339))
		}
	}
	return tw.Flush()
}

func describeWorkspace(ctx context.Context, c *Client, id string, stdout io.Writer) error {
	out, err := c.AMP().DescribeWorkspace(ctx, &amp.DescribeWorkspaceInput{WorkspaceId: aws.String(id)})
	if err != nil {
		return err
	}
	w := out.Workspace
	fmt.Fprintf(stdout, "workspace:  %s\nalias:      %s\nstatus:     %s\narn:        %s\nendpoint:   %s\ncreated:    %s\n",
		aws.ToString(w.WorkspaceId), aws.ToString(w.Alias), w.Status.StatusCode, aws.ToString(w.Arn),
		aws.ToString(w.PrometheusEndpoint), aws.ToTime(w.CreatedAt).UTC().Format(time.RFC3339))
	return nil
}

func createCredential(ctx context.Context, c *Client, noun string, doc json.RawMessage, desc string, stdout io.Writer) error {
	if noun == "keys" {
		id, secret, err := c.CreateAccessKey(ctx, doc)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "AWS_ACCESS_KEY_ID=%s\nAWS_SECRET_ACCESS_KEY=%s\n", id, secret)
		return nil
	}
	token, err := c.CreateToken(ctx, doc, desc)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "ORRERY_TOKEN=%s\n", token)
	return nil
}

// AccessPolicy is the least-privilege policy of an access level
// (remote-write, query, read-write or admin) on one workspace.
func AccessPolicy(ws, access string) (json.RawMessage, error) {
	if ws == "" {
		return nil, errors.New("the policy needs a workspace")
	}
	return policyDocument("", ws, access)
}

func listCredentials(ctx context.Context, c *Client, noun string, stdout io.Writer) error {
	var out struct {
		AccessKeys []credential `json:"accessKeys"`
		Tokens     []credential `json:"tokens"`
	}
	path := map[string]string{"keys": "/orrery/v1/accesskeys", "tokens": "/orrery/v1/tokens"}[noun]
	if err := c.Do(ctx, "GET", path, nil, &out); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tCREATED\tDESCRIPTION\tPOLICY")
	for _, k := range append(out.AccessKeys, out.Tokens...) {
		state := "active"
		if k.Revoked {
			state = "revoked"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.ID, state, time.UnixMilli(int64(k.CreatedAt*1000)).UTC().Format(time.RFC3339),
			k.Description, compact(k.Policy))
	}
	return tw.Flush()
}

type credential struct {
	ID          string          `json:"id"`
	Description string          `json:"description"`
	Policy      json.RawMessage `json:"policy"`
	CreatedAt   float64         `json:"createdAt"`
	Revoked     bool            `json:"revoked"`
}

func compact(doc json.RawMessage) string {
	var b bytes.Buffer
	if err := json.Compact(&b, doc); err != nil {
		return string(doc)
	}
	return b.String()
}
