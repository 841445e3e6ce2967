package failure

import (
	"encoding/json"
	"errors"
	"net/http"
)

// awsCodes are the AWS error types of the kinds, for errors without a Code.
var awsCodes = map[Kind]string{
	Internal:     "InternalServerException",
	Invalid:      "ValidationException",
	Unauthorized: "UnrecognizedClientException",
	Forbidden:    "AccessDeniedException",
	NotFound:     "ResourceNotFoundException",
	Conflict:     "ConflictException",
	TooLarge:     "ValidationException",
	Limited:      "ThrottlingException",
	Unavailable:  "ServiceUnavailableException",
}

// AWS returns the status and AWS error type of err, as the AWS REST-JSON
// surface (control plane, authentication) answers it. AMP answers a
// service quota with 402, whatever else is Limited with 429.
func AWS(err error) (status int, code string) {
	k := KindOf(err)
	status, code = k.Status(), awsCodes[k]
	var e *Error
	if errors.As(err, &e) && e.Code != "" {
		code = e.Code
	}
	if code == "ServiceQuotaExceededException" {
		status = http.StatusPaymentRequired
	}
	return status, code
}

// WriteAWS answers err as AWS does: its status, the x-amzn-ErrorType
// header and {"message": ...}. An Internal error's message is replaced by
// internalMsg when that is not empty (the cause belongs in the log).
func WriteAWS(w http.ResponseWriter, err error, internalMsg string) {
	status, code := AWS(err)
	msg := err.Error()
	if status == http.StatusInternalServerError && internalMsg != "" {
		msg = internalMsg
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amzn-ErrorType", code)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": msg})
}

// promTypes are the Prometheus API's errorType values of the kinds.
var promTypes = map[Kind]string{
	Internal:     "internal",
	Invalid:      "bad_data",
	Unauthorized: "unauthorized",
	Forbidden:    "forbidden",
	NotFound:     "not_found",
	Conflict:     "conflict",
	TooLarge:     "bad_data",
	Limited:      "too_many_requests",
	Unavailable:  "unavailable",
}

// WritePrometheus answers err as the Prometheus HTTP API does:
// {"status":"error","errorType":...,"error":...} with the kind's status.
func WritePrometheus(w http.ResponseWriter, err error) {
	k := KindOf(err)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(k.Status())
	_ = json.NewEncoder(w).Encode(map[string]string{"status": "error", "errorType": promTypes[k], "error": err.Error()})
}

// WriteText answers err as remote write and OTLP receivers do: the kind's
// status and the message as plain text.
func WriteText(w http.ResponseWriter, err error) {
	http.Error(w, err.Error(), KindOf(err).Status())
}

// FromStatus returns the kind an upstream's HTTP error status means, for
// passing its answer on: 4xx keep their meaning (those without a kind of
// their own are Invalid), anything else is Unavailable, so that senders
// retry.
func FromStatus(status int) Kind {
	switch status {
	case http.StatusBadRequest:
		return Invalid
	case http.StatusUnauthorized:
		return Unauthorized
	case http.StatusForbidden:
		return Forbidden
	case http.StatusNotFound:
		return NotFound
	case http.StatusConflict:
		return Conflict
	case http.StatusRequestEntityTooLarge:
		return TooLarge
	case http.StatusTooManyRequests:
		return Limited
	}
	if status >= 400 && status < 500 {
		return Invalid
	}
	return Unavailable
}
