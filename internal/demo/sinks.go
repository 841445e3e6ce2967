package demo

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/smtp"
	"net/textproto"
	"strings"
	"time"

	"github.com/orrery-dev/orrery/internal/auth"
)

// The seed's delivery: the alert goes to an SNS topic whose email
// subscription mails the on-call address, and by email directly. The demo
// runs both ends on loopback: an SNS-compatible endpoint that checks each
// Publish's SigV4 signature and mails the message to the subscription, and
// an SMTP sink that prints what it receives.
const (
	oncallAddress = "oncall@mesh-demo.local"
	snsTopic      = "arn:aws:sns:us-east-1:000000000000:mesh-latency"
	snsFrom       = "no-reply@sns.amazonaws.com"
)

// smtpSink is a minimal SMTP server (RFC 5321 without extensions) that
// prints each mail's sender, recipients and subject on the console.
type smtpSink struct {
	ln  net.Listener
	con *console
}

func startSMTPSink(con *console) (*smtpSink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen smtp sink: %w", err)
	}
	s := &smtpSink{ln: ln, con: con}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(c)
		}
	}()
	return s, nil
}

func (s *smtpSink) Addr() string { return s.ln.Addr().String() }

func (s *smtpSink) Close() error { return s.ln.Close() }

func (s *smtpSink) serve(c net.Conn) {
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	tp := textproto.NewConn(c)
	reply := func(line string) bool { return tp.PrintfLine("%s", line) == nil }
	if !reply("220 mesh-demo.local ESMTP orrery demo sink") {
		return
	}
	var from string
	var to []string
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO", "HELO":
			reply("250 mesh-demo.local")
		case "MAIL":
			from, to = address(arg), nil
			reply("250 OK")
		case "RCPT":
			to = append(to, address(arg))
			reply("250 OK")
		case "DATA":
			reply("354 end with <CRLF>.<CRLF>")
			b, err := tp.ReadDotBytes()
			if err != nil {
				return
			}
			s.con.printf("mail: %s -> %s: %s\n", from, strings.Join(to, ", "), subject(string(b)))
			reply("250 OK queued")
		case "RSET", "NOOP":
			reply("250 OK")
		case "QUIT":
			reply("221 bye")
			return
		default:
			reply("502 command not implemented")
		}
	}
}

// address returns the address in a MAIL FROM:<a> or RCPT TO:<a> argument.
func address(arg string) string {
	_, a, _ := strings.Cut(arg, "<")
	a, _, _ = strings.Cut(a, ">")
	return a
}

// subject returns a mail's Subject header.
func subject(data string) string {
	head, _, _ := strings.Cut(strings.ReplaceAll(data, "\r\n", "\n"), "\n\n")
	for _, l := range strings.Split(head, "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(k, "Subject") {
			return strings.TrimSpace(v)
		}
	}
	return "(no subject)"
}

// snsEndpoint answers SNS Publish calls of the AWS query protocol signed
// with the demo's SNS key, prints them, and delivers the message to the
// topic's email subscription through the SMTP sink, as SNS does.
type snsEndpoint struct {
	verifier *auth.Verifier
	con      *console
	smtpAddr string
}

// newSNSKey makes the access key the demo's SNS receiver signs with.
func newSNSKey() (id, secret string) {
	b := make([]byte, 20)
	_, _ = rand.Read(b)
	return "AKIADEMOSNS" + strings.ToUpper(hex.EncodeToString(b[:5])), hex.EncodeToString(b[5:])
}

func newSNSEndpoint(keyID, secret, smtpAddr string, con *console) *snsEndpoint {
	return &snsEndpoint{con: con, smtpAddr: smtpAddr, verifier: &auth.Verifier{Service: "sns",
		Secrets: func(id string) (string, bool, error) { return secret, id == keyID, nil }}}
}

func (e *snsEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fail := func(status int, code, msg string) {
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(status)
		_, _ = fmt.Fprintf(w, `<ErrorResponse><Error><Type>Sender</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>demo</RequestId></ErrorResponse>`, code, msg)
	}
	if _, err := e.verifier.Verify(r); err != nil {
		fail(http.StatusForbidden, "SignatureDoesNotMatch", err.Error())
		return
	}
	if err := r.ParseForm(); err != nil || r.PostForm.Get("Action") != "Publish" {
		fail(http.StatusBadRequest, "InvalidAction", "the demo's SNS endpoint answers Publish only")
		return
	}
	topic, subj, msg := r.PostForm.Get("TopicArn"), r.PostForm.Get("Subject"), r.PostForm.Get("Message")
	if topic != snsTopic {
		fail(http.StatusNotFound, "NotFound", "Topic does not exist")
		return
	}
	e.con.printf("sns: published to %s: %s\n", topic, subj)
	// The topic's email subscription.
	body := fmt.Sprintf("From: AWS Notifications <%s>\r\nTo: %s\r\nSubject: %s\r\n\r\n%s\r\n", snsFrom, oncallAddress, subj, msg)
	if err := smtp.SendMail(e.smtpAddr, nil, snsFrom, []string{oncallAddress}, []byte(body)); err != nil {
		e.con.printf("sns: email subscription %s: %v\n", oncallAddress, err)
	}
	w.Header().Set("Content-Type", "text/xml")
	_, _ = fmt.Fprint(w, `<PublishResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><PublishResult><MessageId>6c1a2f0e-0000-4000-8000-000000000001</MessageId></PublishResult><ResponseMetadata><RequestId>demo</RequestId></ResponseMetadata></PublishResponse>`)
}
