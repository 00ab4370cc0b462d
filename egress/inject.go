package egress

import (
	"mime"
	"regexp"
	"strings"
)

// InjectionRule is one rule of prompt-injection stripping: text matching
// Pattern in a text response is replaced by "[STRIPPED:<Name>]".
type InjectionRule struct {
	Name    string
	Pattern *regexp.Regexp
}

// InjectionRules are the rules applied to text responses when a policy has
// StripInjection. They remove what a fetched page can use to steer the agent
// that reads it: instructions addressed to the model, chat-template control
// tokens, and characters that hide text from a human reviewer.
var InjectionRules = []InjectionRule{
	{"ignore-instructions", regexp.MustCompile(`(?i)\b(?:ignore|disregard|forget|override)\s+(?:all\s+|any\s+|the\s+)?(?:previous|prior|above|earlier|preceding|system)\s+(?:instructions?|prompts?|rules|directions|context)\b[^\n]*`)},
	{"role-override", regexp.MustCompile(`(?i)\b(?:you\s+are\s+now|from\s+now\s+on\s+you\s+are|act\s+as\s+(?:an?\s+)?(?:unrestricted|jailbroken|developer[- ]mode))\b[^\n]*`)},
	{"system-prompt", regexp.MustCompile(`(?i)\b(?:reveal|print|show|repeat|output)\s+(?:your|the)\s+(?:system\s+prompt|hidden\s+instructions|instructions\s+above)\b[^\n]*`)},
	{"chat-template", regexp.MustCompile(`<\|(?:im_start|im_end|system|user|assistant|endoftext|eot_id|start_header_id|end_header_id)\|>|\[/?INST\]|<</?SYS>>`)},
	{"hidden-characters", regexp.MustCompile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\U000e0000-\U000e007f]+")},
}

// isText reports whether a response of this content type is text the agent
// will read (and so is scanned); binary bodies are passed through.
func isText(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	return strings.HasPrefix(mt, "text/") || mt == "application/json" || strings.HasSuffix(mt, "+json") ||
		mt == "application/xml" || strings.HasSuffix(mt, "+xml") || mt == "application/javascript"
}

// stripInjection applies InjectionRules and returns the new text and the
// names of the rules that matched.
func stripInjection(text string) (string, []string) {
	var hit []string
	for _, r := range InjectionRules {
		if !r.Pattern.MatchString(text) {
			continue
		}
		hit = append(hit, r.Name)
		repl := "[STRIPPED:" + r.Name + "]"
		if r.Name == "hidden-characters" {
			repl = ""
		}
		text = r.Pattern.ReplaceAllLiteralString(text, repl)
	}
	return text, hit
}
