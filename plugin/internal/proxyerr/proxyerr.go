// Package proxyerr reads the error answers that come back through the
// inferservers/proxy subresource: a Kubernetes Status from the API server,
// an OpenAI or TGI error from a router or a model server, or plain text.
package proxyerr

import (
	"bytes"
	"encoding/json"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// maxText bounds the text of an answer that is neither JSON error shape.
const maxText = 300

// Message extracts the message of an error body: a Kubernetes Status, an
// OpenAI {"error":{"message":...}}, a {"error":"..."}, a {"message":...} or
// text (whitespace folded, cut at 300 characters). Empty for an empty body.
func Message(body []byte) string {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return ""
	}
	var status metav1.Status
	if json.Unmarshal(body, &status) == nil && status.Kind == "Status" {
		return status.Message
	}
	var withError struct {
		Error   json.RawMessage `json:"error"`
		Message string          `json:"message"`
	}
	if json.Unmarshal(body, &withError) == nil {
		if msg := ErrorText(withError.Error); msg != "" {
			return msg
		}
		if withError.Message != "" {
			return withError.Message
		}
	}
	text := strings.Join(strings.Fields(string(body)), " ")
	if len(text) > maxText {
		text = text[:maxText] + "..."
	}
	return text
}

// ErrorText renders the "error" member of an OpenAI or TGI answer: a
// string, or an object's message with its type in parentheses. Empty for
// an absent or null member.
func ErrorText(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var str string
	if json.Unmarshal(raw, &str) == nil {
		return str
	}
	var obj struct {
		Message string `json:"message"`
		Type    string `json:"type"`
	}
	if json.Unmarshal(raw, &obj) == nil && obj.Message != "" {
		if obj.Type != "" {
			return obj.Message + " (" + obj.Type + ")"
		}
		return obj.Message
	}
	return string(raw)
}
