package failure_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/failure"
)

func TestKinds(t *testing.T) {
	base := errors.New("cause")
	for _, tc := range []struct {
		err      error
		kind     failure.Kind
		status   int
		awsCode  string
		awsState int
	}{
		{failure.E(failure.NotFound, "get workspace", base), failure.NotFound, 404, "ResourceNotFoundException", 404},
		{fmt.Errorf("outer: %w", failure.Errorf(failure.Invalid, "bad %s", "x")), failure.Invalid, 400, "ValidationException", 400},
		{failure.WithCode(failure.Limited, "ServiceQuotaExceededException", "too many"), failure.Limited, 429, "ServiceQuotaExceededException", 402},
		{failure.WithCode(failure.Forbidden, "SignatureDoesNotMatch", "no"), failure.Forbidden, 403, "SignatureDoesNotMatch", 403},
		{base, failure.Internal, 500, "InternalServerException", 500},
		{failure.E(failure.Unavailable, "", base), failure.Unavailable, 503, "ServiceUnavailableException", 503},
	} {
		t.Run(tc.err.Error(), func(t *testing.T) {
			require.Equal(t, tc.kind, failure.KindOf(tc.err))
			require.Equal(t, tc.status, failure.KindOf(tc.err).Status())
			require.Equal(t, tc.kind != failure.Internal, errors.Is(tc.err, tc.kind))
			status, code := failure.AWS(tc.err)
			require.Equal(t, tc.awsState, status)
			require.Equal(t, tc.awsCode, code)
		})
	}
	require.ErrorIs(t, failure.E(failure.NotFound, "op", base), base, "the cause stays reachable")
	require.False(t, errors.Is(failure.E(failure.NotFound, "op", base), failure.Conflict))
}

func TestSurfaces(t *testing.T) {
	err := failure.E(failure.NotFound, "get workspace", errors.New("ws-1 does not exist"))

	w := httptest.NewRecorder()
	failure.WriteAWS(w, err, "")
	require.Equal(t, http.StatusNotFound, w.Code)
	require.Equal(t, "ResourceNotFoundException", w.Header().Get("X-Amzn-ErrorType"))
	require.JSONEq(t, `{"message":"get workspace: ws-1 does not exist"}`, w.Body.String())

	w = httptest.NewRecorder()
	failure.WriteAWS(w, errors.New("disk on fire"), "internal error; see the server log")
	require.Equal(t, http.StatusInternalServerError, w.Code)
	require.JSONEq(t, `{"message":"internal error; see the server log"}`, w.Body.String())

	w = httptest.NewRecorder()
	failure.WritePrometheus(w, failure.Errorf(failure.Invalid, "parse error"))
	require.Equal(t, http.StatusBadRequest, w.Code)
	var body map[string]string
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &body))
	require.Equal(t, map[string]string{"status": "error", "errorType": "bad_data", "error": "parse error"}, body)

	w = httptest.NewRecorder()
	failure.WriteText(w, failure.Errorf(failure.Limited, "rate limited"))
	require.Equal(t, http.StatusTooManyRequests, w.Code)
	require.Equal(t, "rate limited\n", w.Body.String())
}

func TestFromStatus(t *testing.T) {
	for status, want := range map[int]failure.Kind{400: failure.Invalid, 401: failure.Unauthorized, 413: failure.TooLarge,
		429: failure.Limited, 422: failure.Invalid, 500: failure.Unavailable, 502: failure.Unavailable, 0: failure.Unavailable} {
		require.Equal(t, want, failure.FromStatus(status), "status %d", status)
	}
}
