// Package auth verifies who sent a request: AWS Signature Version 4
// (header and presigned-URL forms) against Orrery-issued access keys.
package auth
