package locales

import (
	"html/template"
	"strings"
)

// emailTemplate lays out an email's HTML part. html/template escapes every
// value, so an incident title cannot inject markup.
var emailTemplate = template.Must(template.New("email").Parse(`<!DOCTYPE html>
<html lang="{{.Lang}}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
</head>
<body style="margin:0;padding:24px;font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;font-size:16px;line-height:1.5;color:#1a1a1a">
<h1 style="font-size:20px;margin:0 0 16px">{{.Title}}</h1>
{{range .Paragraphs}}<p style="margin:0 0 16px">{{range $i, $line := .}}{{if $i}}<br>
{{end}}{{$line}}{{end}}</p>
{{end}}<hr style="border:none;border-top:1px solid #ddd;margin:24px 0 16px">
<p style="margin:0;font-size:13px;color:#666">{{.Footer}}</p>
</body>
</html>
`))

// emailHTML builds the HTML part of an email from its plain text: the title
// as heading, the body's paragraphs ("\n\n") with their line breaks ("\n"),
// and the footer.
func emailHTML(lang, title, body, footer string) (string, error) {
	var paragraphs [][]string
	for _, p := range strings.Split(body, "\n\n") {
		if p = strings.TrimSpace(p); p != "" {
			paragraphs = append(paragraphs, strings.Split(p, "\n"))
		}
	}
	var b strings.Builder
	err := emailTemplate.Execute(&b, struct {
		Lang, Title, Footer string
		Paragraphs          [][]string
	}{lang, title, footer, paragraphs})
	return b.String(), err
}
