from llmci.cli import main

main()
