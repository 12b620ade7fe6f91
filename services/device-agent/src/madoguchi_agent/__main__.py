from madoguchi_agent.cli import main

main()
