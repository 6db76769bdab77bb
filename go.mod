module github.com/lethe-privacy/lethe

go 1.26.8
