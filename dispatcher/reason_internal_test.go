package dispatcher

import (
	"go/ast"
	"go/parser"
	"go/token"
	"testing"
)

// TestReasonsListed: every Reason constant of reason.go is in reasons (the
// set ReasonLabel knows), and nothing else is.
func TestReasonsListed(t *testing.T) {
	t.Parallel()
	f, err := parser.ParseFile(token.NewFileSet(), "reason.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	declared := map[string]bool{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			vs := s.(*ast.ValueSpec)
			if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "Reason" {
				continue
			}
			for _, n := range vs.Names {
				declared[n.Name] = true
			}
		}
	}
	if len(declared) < 20 {
		t.Fatalf("found %d Reason constants in reason.go: the parsing is broken", len(declared))
	}
	if len(declared) != len(reasons) {
		t.Errorf("reason.go declares %d Reasons, reasons lists %d", len(declared), len(reasons))
	}
	for name := range declared {
		obj := f.Scope.Lookup(name)
		lit := obj.Decl.(*ast.ValueSpec).Values[0].(*ast.BasicLit).Value
		if !reasons[Reason(lit[1:len(lit)-1])] {
			t.Errorf("%s (%s) is not in reasons", name, lit)
		}
	}
}
