package app

import (
	"context"
	"errors"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/amp"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/catalog"
	"github.com/orrery-dev/orrery/internal/workspace"
)

// TestEveryAMPOperation calls every operation of the AWS SDK's amp client,
// signed with the admin key, through the server's route table: each is
// served: it succeeds, or fails with one of AMP's own errors for the
// nearly empty input it is given. None falls through to the mux's 404 or
// 405.
func TestEveryAMPOperation(t *testing.T) {
	s, ws := newTestServer(t)
	doomed, _, err := s.catalog.CreateWorkspace(context.Background(), catalog.Workspace{ID: workspace.NewID(), Status: catalog.StatusActive, CreatedAt: time.Now()})
	require.NoError(t, err)
	srv := httptest.NewServer(s.routes())
	t.Cleanup(srv.Close)
	client := amp.New(amp.Options{BaseEndpoint: aws.String(srv.URL), Region: "us-east-1", RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider("AKIAROUTETEST0000001", "route-test-secret", ""),
		// The client checks required members before sending: skipped, so
		// that the server's answer to each operation is what is tested.
		APIOptions: []func(*middleware.Stack) error{func(st *middleware.Stack) error {
			_, _ = st.Initialize.Remove("OperationInputValidation") // Absent for operations without required members.
			return nil
		}}})
	// The members in the path, which the client cannot send empty.
	path := map[string]string{"WorkspaceId": ws.String(), "Name": "envoy", "ScraperId": "s-00000000-0000-4000-8000-000000000000",
		"AnomalyDetectorId": "ad-00000000-0000-4000-8000-000000000000", "ResourceArn": s.arnPrefix() + ws.String()}
	amps := map[string]bool{"ValidationException": true, "ResourceNotFoundException": true, "ConflictException": true}

	ct := reflect.TypeOf(client)
	ops := 0
	for i := range ct.NumMethod() {
		m := ct.Method(i)
		if m.Type.NumIn() != 4 || !strings.HasSuffix(m.Type.In(2).Elem().Name(), "Input") {
			continue // Options, not an operation.
		}
		ops++
		t.Run(m.Name, func(t *testing.T) {
			in := reflect.New(m.Type.In(2).Elem())
			for name, v := range path {
				if m.Name == "DeleteWorkspace" && name == "WorkspaceId" {
					v = doomed.ID.String() // ws stays for the operations after it.
				}
				if f := in.Elem().FieldByName(name); f.IsValid() {
					f.Set(reflect.ValueOf(aws.String(v)))
				}
			}
			out := m.Func.Call([]reflect.Value{reflect.ValueOf(client), reflect.ValueOf(context.Background()), in})
			err, _ := out[1].Interface().(error)
			if err == nil {
				return
			}
			var apiErr smithy.APIError
			require.True(t, errors.As(err, &apiErr), "%v", err)
			require.True(t, amps[apiErr.ErrorCode()], "%s answered %v", m.Name, err)
		})
	}
	require.Equal(t, 44, ops, "the amp client's operations (service/amp v1.55.2, one api_op_*.go each): a new one needs a route")
}
