.PHONY: lab test bench flows
lab:
	./run.sh lab
test:
	./run.sh test
bench:
	./run.sh bench
