// Command hello prints hello: a main package for proc's Builder test.
package main

import "fmt"

func main() { fmt.Println("hello") }
